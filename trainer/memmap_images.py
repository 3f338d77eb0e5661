"""Memory-mapped uint8 image sets, read a batch at a time (issue 13: image folders larger than memory).

:class:`MemmapImages` is an (N, H, W) uint8 set whose pixels stay in a numpy ``.npy`` file on disk
(``trainer/folder_cache.py`` writes them): indexing reads only the rows asked for. :class:`BatchInput`
is what the training loop indexes instead of the whole float tensor: ``x[idx]`` is the (B, H*W) float32
batch in [0, 1], bit-for-bit what ``to_model_input(train_x)[idx]`` gives, and ``x.shape[0]`` is N.
:func:`model_input` picks one or the other, so the loop's change is one line.

Under DistributedDataParallel a rank either trains on ``train_x.shard(rank, world_size)`` or takes its
slice of each batch of the global permutation (``x[perm[b * B:(b + 1) * B][rank::world_size]]``);
either way it reads only its own rows.
"""

from __future__ import annotations

import mmap

import numpy as np
import torch

RELEASE_BYTES = 64 << 20  # BatchInput drops its mapped pages after reading about this much (bounded RSS)

class MemmapImages:
    """Images (N, H, W) uint8: ``rows`` of a memory-mapped cache, read only when indexed.

    ``x[idx]`` (an int array/tensor, a slice or an int) returns a uint8 tensor (B, H, W), read from
    the map in sorted row order (sequential on disk) and put back in the order asked for. ``shard``
    gives a rank its part, ``load()`` the whole set in memory (explicitly). Pickles as the file name and
    the rows (never the pixels), so DataLoader workers and spawned processes reopen the map.
    """

    def __init__(self, images: np.memmap, rows: np.ndarray | None = None) -> None:
        self.images = images
        self.rows = np.arange(len(images), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), *images.shape[1:])
        self.dtype = torch.uint8

    def __len__(self) -> int:
        return len(self.rows)

    def gather(self, idx) -> np.ndarray:
        """The uint8 rows at positions ``idx`` as a numpy array (B, H, W) (a copy; the map is untouched)."""
        if torch.is_tensor(idx):
            idx = idx.numpy()
        rows = self.rows[idx]
        if rows.ndim == 0:
            return np.array(self.images[int(rows)])
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), *self.images.shape[1:]), dtype=np.uint8)
        out[order] = self.images[rows[order]]
        return out

    def __getitem__(self, idx) -> torch.Tensor:
        return torch.from_numpy(self.gather(idx))

    def shard(self, rank: int, world_size: int) -> MemmapImages:
        """Every ``world_size``-th image from ``rank`` on: the shards of all ranks cover the set exactly
        once and differ in size by at most one. Strided, not contiguous, because the files are sorted by
        class: each rank gets every class in proportion."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        return MemmapImages(self.images, self.rows[rank::world_size])

    def load(self) -> torch.Tensor:
        """All the rows in memory, (N, H, W) uint8."""
        return self[np.arange(len(self))]

    def release(self) -> None:
        """Unmap this process's resident pages of the cache (MADV_DONTNEED; they stay in the OS page
        cache, so the next read of them is a minor fault, not disk I/O). Keeps RSS bounded."""
        mm = getattr(self.images, "_mmap", None)
        if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
            mm.madvise(mmap.MADV_DONTNEED)

    def __reduce__(self):
        return _reopen, (str(self.images.filename), self.rows)


def _reopen(filename: str, rows: np.ndarray) -> MemmapImages:
    return MemmapImages(np.load(filename, mmap_mode="r"), rows)


class BatchInput:
    """The training loop's view of a :class:`MemmapImages` train set: ``x[idx]`` is the batch as
    (B, H*W) float32 in [0, 1] -- bit-for-bit ``to_model_input(train_x)[idx]`` -- read from the cache
    per batch, and ``x.shape`` is (N, H*W). Only the batch is ever converted to float. After about
    ``release_bytes`` of pages touched it releases the map, so RSS stays bounded over an epoch."""

    def __init__(self, images: MemmapImages, release_bytes: int = RELEASE_BYTES) -> None:
        self.images = images
        h, w = images.shape[1:]
        self.shape = (len(images), h * w)
        self.release_bytes = release_bytes
        self._page = mmap.PAGESIZE
        self._row_pages = (h * w) // self._page + 2  # pages one row can touch
        self._touched = 0

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx) -> torch.Tensor:
        u8 = self.images.gather(idx)
        self._touched += len(u8) * self._row_pages * self._page
        if self.release_bytes and self._touched > self.release_bytes:
            self.images.release()
            self._touched = 0
        return torch.from_numpy(u8).reshape(len(u8), -1).to(torch.float32).div_(255.0)


def model_input(x: torch.Tensor | MemmapImages) -> torch.Tensor | BatchInput:
    """What the training loop indexes with ``x[idx]``: a :class:`BatchInput` for a memory-mapped set,
    else the whole (N, H*W) float32 tensor as ``to_model_input`` makes it."""
    if isinstance(x, MemmapImages):
        return BatchInput(x)
    return x.reshape(x.shape[0], -1).to(torch.float32).div_(255.0)
