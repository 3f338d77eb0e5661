"""Memory-mapped uint8 image sets, read a batch at a time (issue 13: image folders larger than memory).

:class:`MemmapImages` is an (N, H, W) uint8 set whose pixels stay in a numpy ``.npy`` file on disk
(``trainer/folder_cache.py`` writes them), opened as a read-only ``np.memmap``: indexing reads only the
rows asked for. :class:`BatchInput` is what the training loop indexes instead of the whole float tensor:
``x[idx]`` is the (B, H*W) float32 batch in [0, 1], bit-for-bit what ``to_model_input(train_x)[idx]``
gives, and ``x.shape[0]`` is N. :func:`model_input` picks one or the other, so the loop's change is one line.

How a batch is read (``reader``): ``"pread"`` (default) sorts the rows and reads each run of consecutive
rows with one positioned read of the file; ``"map"`` fancy-indexes the ``np.memmap``. Both go through the
OS page cache. Mapped pages count towards the process's RSS: on this machine (Linux 6.18, ext4 with large
folios) a fault maps a whole folio, so a few random batches map most of the file (one batch of 128 rows
mapped 130 MB of a 150 MB cache), and MADV_DONTNEED cannot hold that down. Positioned reads keep RSS at
the batch, for one system call per row: about 0.2 ms of CPU per batch of 128 (measured quiet), 0-10 % of
a 784-400-20 training step on this loaded machine. One epoch of 180,000 images
(bench/results/folder_cache.txt): peak RSS growth 68 MiB with pread, 209 MiB with map, 732 MiB with the
whole set in memory as floats; the cache is 150 MiB. ``reader="map"`` is the choice where RSS limits
do not matter (the mapped pages are clean page cache the kernel may drop at any time).

Under DistributedDataParallel a rank either trains on ``train_x.shard(rank, world_size)`` or takes its
slice of each batch of the global permutation (``x[perm[b * B:(b + 1) * B][rank::world_size]]``);
either way it reads only its own rows.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.data import ImageDataset

READERS = ("pread", "map")


class MemmapImages:
    """Images (N, H, W) uint8: ``rows`` of a memory-mapped cache ``images``, read only when indexed.

    ``x[idx]`` (an int array/tensor, a slice or an int) returns a uint8 tensor (B, H, W), read in sorted
    row order (sequential on disk) and put back in the order asked for. ``shard`` gives a rank its part,
    ``load()`` the whole set in memory (explicitly). Pickles as the file name, rows and reader (never the
    pixels), so DataLoader workers and spawned processes reopen the file.
    """

    def __init__(self, images: np.memmap, rows: np.ndarray | None = None, reader: str = "pread") -> None:
        if reader not in READERS:
            raise ValueError(f"reader must be one of {READERS}, got {reader!r}")
        self.images = images
        self.rows = np.arange(len(images), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), *images.shape[1:])
        self.dtype = torch.uint8
        self.reader = reader
        self._fd: int | None = None  # opened on the first positioned read, closed with the object

    def __len__(self) -> int:
        return len(self.rows)

    def gather(self, idx) -> np.ndarray:
        """The uint8 rows at positions ``idx`` as a new numpy array (B, H, W), or (H, W) for an int."""
        if torch.is_tensor(idx):
            idx = idx.numpy()
        rows = self.rows[idx]
        if rows.ndim == 0:
            return self.gather(np.atleast_1d(idx))[0]
        order = np.argsort(rows, kind="stable")
        ascending = rows[order]
        batch = self._pread(ascending) if self.reader == "pread" else self.images[ascending]
        out = np.empty((len(rows), *self.images.shape[1:]), dtype=np.uint8)
        out[order] = batch
        return out

    def _pread(self, ascending: np.ndarray) -> np.ndarray:
        """Rows ``ascending`` (sorted) with one positioned read per run of consecutive rows."""
        if self._fd is None:
            self._fd = os.open(self.images.filename, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            weakref.finalize(self, os.close, self._fd)
        fd, row = self._fd, int(np.prod(self.images.shape[1:]))
        buf = np.empty((len(ascending), *self.images.shape[1:]), dtype=np.uint8)
        view = memoryview(buf.reshape(-1))
        starts = np.flatnonzero(np.diff(ascending, prepend=-2) != 1)
        ends = np.append(starts[1:], len(ascending))
        positions = (self.images.offset + ascending[starts] * row).tolist()
        for a, b, pos in zip((starts * row).tolist(), (ends * row).tolist(), positions):
            if os.preadv(fd, [view[a:b]], pos) != b - a:
                self._read_rest(view[a:b], pos)
        return buf

    def _read_rest(self, dest: memoryview, pos: int) -> None:
        """Re-read ``dest`` from ``pos`` to the end after a short read (one read returns at most ~2 GB)."""
        while len(dest):
            n = os.preadv(self._fd, [dest], pos)
            if n == 0:
                raise OSError(f"{self.images.filename}: ends at byte {pos}, before the rows asked for; was it changed?")
            dest, pos = dest[n:], pos + n

    def __getitem__(self, idx) -> torch.Tensor:
        return torch.from_numpy(self.gather(idx))

    def shard(self, rank: int, world_size: int) -> MemmapImages:
        """Every ``world_size``-th image from ``rank`` on: the shards of all ranks cover the set exactly
        once and differ in size by at most one. Strided, not contiguous, because the files are sorted by
        class: each rank gets every class in proportion."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        return MemmapImages(self.images, self.rows[rank::world_size], self.reader)

    def load(self) -> torch.Tensor:
        """All the rows in memory, (N, H, W) uint8."""
        return self[np.arange(len(self))]

    def __reduce__(self):
        return _reopen, (str(self.images.filename), self.rows, self.reader)


def _reopen(filename: str, rows: np.ndarray, reader: str) -> MemmapImages:
    return MemmapImages(np.load(filename, mmap_mode="r"), rows, reader)


class BatchInput:
    """The training loop's view of a :class:`MemmapImages` train set: ``x[idx]`` is the batch as
    (B, H*W) float32 in [0, 1] -- bit-for-bit ``to_model_input(train_x)[idx]`` -- read from the cache
    per batch, and ``x.shape`` is (N, H*W). Only the batch is ever converted to float."""

    def __init__(self, images: MemmapImages) -> None:
        self.images = images
        self.shape = (len(images), int(np.prod(images.shape[1:])))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx) -> torch.Tensor:
        u8 = torch.from_numpy(self.images.gather(idx))
        return u8.reshape(*u8.shape[:-2], self.shape[1]).to(torch.float32).div_(255.0)


def model_input(x: torch.Tensor | MemmapImages) -> torch.Tensor | BatchInput:
    """What the training loop indexes with ``x[idx]``: a :class:`BatchInput` for a memory-mapped set,
    else the whole (N, H*W) float32 tensor as ``to_model_input`` makes it."""
    if isinstance(x, MemmapImages):
        return BatchInput(x)
    return x.reshape(x.shape[0], -1).to(torch.float32).div_(255.0)


@dataclass
class FolderDataset(ImageDataset):
    """``load_image_folder``'s :class:`~trainer.data.ImageDataset` with ``train_x`` a
    :class:`MemmapImages` (N, H, W) uint8 on disk; ``test_x`` (M, H, W) uint8 is in memory
    (evaluation reads all of it every epoch). ``cache_path``: the cache folder; ``built``: whether
    this call decoded the folder (False: reused)."""

    train_x: MemmapImages
    cache_path: Path = Path()
    built: bool = False
