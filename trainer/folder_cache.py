"""Image folders larger than memory: decoded once into a memory-mapped uint8 cache on disk (issue 13).

``open_folder_dataset(folder, image_size)`` returns a :class:`FolderDataset` with the fields of
``trainer.image_folder.load_image_folder``'s ImageDataset and the same images, labels, label names, train/test
split and provenance hash, except that ``train_x`` is a :class:`MemmapImages`: rows of a numpy ``.npy``
file read through a memory map, only those a batch asks for. The first call decodes the folder in
parallel (a process pool over chunks of files, with a progress bar) into the cache; later calls list and
stat the files, find the same key and map the file (no decoding).

Key: sha256 of the format version, the converter (source of trainer.image_folder's Pillow-to-grey
functions), (H, W), the class folder names and each image file's relative path, size and mtime (ns).
Any change gives a new key and a rebuild; the superseded cache of that folder and size is deleted.

Where: :func:`folder_cache_home` (``cache_dir``, ``$VAE_CACHE_DIR``, ``$XDG_CACHE_HOME`` or ``~/.cache``),
never inside the image folder (read-only, shared, or the user's backed-up data); each cache is a folder
``<H>x<W>-<key>/`` of ``images.npy`` (N, H, W) uint8, ``labels.npy`` (N,) int64 and ``meta.json``.

Atomic: a build writes into a ``.tmp-*`` sibling, fsyncs it and renames it to its key when complete;
only key-named folders are read, so an interrupted build leaves nothing trusted. A lock file makes
concurrent builders (DDP ranks on one machine) wait for one build. Unreadable images are skipped and
listed in one :class:`~trainer.data.DataWarning` line whenever the folder opens. (One file over 400
lines: the listing, key, build and checked reader define one format and stay in agreement side by side.)
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import json
import math
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from trainer import image_folder
from trainer.data import DataError, DataWarning, one_line
from trainer.fileio import fsync_dir
from trainer.memmap_images import FolderDataset, MemmapImages

FORMAT_VERSION = 1
CHUNK_FILES = 256  # files per task: big enough to amortise the IPC, small enough for a smooth progress bar
_COPY_BYTES = 16 << 20


def _decode(fp: BinaryIO, size_hw: tuple[int, int]) -> np.ndarray:
    """An open image file -> (H, W) uint8 grey: trainer.image_folder's conversion. The one call to it
    here; ``_CONVERTER`` names the functions whose source enters the key (a changed conversion rebuilds)."""
    return image_folder._load_image(fp, size_hw)


_CONVERTER = (image_folder._load_image, image_folder.to_gray)


def default_cache_dir() -> Path:
    """``$VAE_CACHE_DIR``, else ``$XDG_CACHE_HOME/vae-latent-explorer``, else ``~/.cache/vae-latent-explorer``."""
    if os.environ.get("VAE_CACHE_DIR"):
        return Path(os.environ["VAE_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "vae-latent-explorer"


# --------------------------------------------------------------------------- listing and key


@dataclass(frozen=True)
class FolderListing:
    """The image files of a folder in ``load_image_folder``'s order: ``files`` relative posix paths,
    ``labels`` (n,) int64 (class index, -1 for images directly in the root), and the cache ``key``."""

    root: Path
    files: list[str]
    labels: np.ndarray
    label_names: list[str] | None
    key: str


def _converter_id() -> str:
    try:
        src = "".join(inspect.getsource(f) for f in _CONVERTER)
    except (OSError, TypeError):  # no source shipped: the format version alone identifies the conversion
        src = ""
    return hashlib.sha256(src.encode()).hexdigest()[:16]


def _scan(folder: str, rel: str, recursive: bool, out: list[tuple[str, int, int]]) -> None:
    """Append (relative path with NUL separators, size, mtime_ns) of the visible image files under
    ``folder``: ``Path.rglob`` semantics (file symlinks followed, directory symlinks not descended,
    unreadable folders skipped) at scandir speed, one stat per file."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except PermissionError:
        return
    for e in entries:
        if e.name.startswith("."):
            continue
        if e.is_file() and os.path.splitext(e.name)[1].lower() in image_folder.IMAGE_EXTENSIONS:
            try:
                st = e.stat()
                out.append((rel + e.name, st.st_size, st.st_mtime_ns))
            except OSError:  # vanished since the listing: its decode fails and it is reported as skipped
                out.append((rel + e.name, -1, -1))
        elif recursive and e.is_dir(follow_symlinks=False):
            _scan(e.path, rel + e.name + "\0", True, out)


def list_folder(root: Path, size_hw: tuple[int, int]) -> FolderListing:
    """List ``root`` as ``load_image_folder`` does (hidden names skipped, sorted by path, one class per
    sub-folder, images directly in ``root`` labelled -1) and hash the listing with each file's size and
    mtime into the cache key (about 6 us per file here; 25 us through pathlib)."""
    with os.scandir(root) as it:
        class_dirs = sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    head = ["vae-folder-cache", FORMAT_VERSION, _converter_id(), size_hw, class_dirs]
    key = hashlib.sha256(json.dumps(head).encode())
    files: list[str] = []
    counts = []
    for ci, name in enumerate([None, *class_dirs]):
        found: list[tuple[str, int, int]] = []
        _scan(str(root if name is None else root / name), "" if name is None else name + "\0", ci > 0, found)
        found.sort()  # NUL sorts below every character a name can hold: the order of Path objects
        for rel, size, mtime in found:
            key.update(f"{rel}\0{size}\0{mtime}\n".encode())  # unambiguous: names hold no NUL, numbers no newline
            files.append(rel.replace("\0", "/"))
        counts.append(len(found))
    labels = np.repeat(np.arange(-1, len(class_dirs), dtype=np.int64), counts)
    return FolderListing(root, files, labels, class_dirs or None, key.hexdigest()[:32])


# --------------------------------------------------------------------------- build

_JOB: dict = {}  # the worker's job: root, files, size, fd and data offset of the output file


def _init_worker(root: Path, files: list[str], size_hw: tuple[int, int], out: str, offset: int,
                 in_pool: bool = True) -> None:
    if in_pool:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it cancels and cleans up
    _JOB.update(root=root, files=files, size=size_hw, fd=os.open(out, os.O_WRONLY), offset=offset)


def _pwrite_all(fd: int, buf, offset: int) -> None:
    view = memoryview(buf).cast("B")
    while len(view):
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _decode_chunk(bounds: tuple[int, int]) -> tuple[int, np.ndarray, list[bytes], list[str]]:
    """Decode files [start, stop) and write their rows into the output file at their place.
    Returns (start, readable mask, sha256 digest per file (b"" if unreadable), error lines)."""
    start, stop = bounds
    h, w = _JOB["size"]
    block = np.zeros((stop - start, h, w), np.uint8)  # unreadable files leave zero rows, dropped later
    ok = np.zeros(stop - start, dtype=bool)
    digests: list[bytes] = []
    errors: list[str] = []
    for i in range(start, stop):
        rel = _JOB["files"][i]
        try:
            with open(_JOB["root"] / rel, "rb") as f:  # streamed: a huge file never sits in memory whole
                block[i - start] = _decode(f, (h, w))
                f.seek(0)
                digests.append(hashlib.file_digest(f, "sha256").digest())
        except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError, ...
            errors.append(f"{rel} ({type(e).__name__}: {one_line(e)})")
            digests.append(b"")
            continue
        ok[i - start] = True
    _pwrite_all(_JOB["fd"], block, _JOB["offset"] + start * h * w)
    return start, ok, digests, errors


def _run_chunks(init: tuple, bounds: list[tuple[int, int]], workers: int, on_result) -> None:
    """``on_result(_decode_chunk(b))`` for every chunk, in order, in ``workers`` processes (fork where
    available: the children need nothing but Pillow, and fork starts them in milliseconds)."""
    if workers == 1:
        _init_worker(*init, in_pool=False)
        try:
            for b in bounds:
                on_result(_decode_chunk(b))
        finally:
            os.close(_JOB.pop("fd"))
            _JOB.clear()
        return
    ctx = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    ex = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init)
    try:
        for res in ex.map(_decode_chunk, bounds):
            on_result(res)
    except BrokenProcessPool:
        raise DataError(f"{init[0]}: a decoding process died (killed or crashed); no cache was written") from None
    finally:
        ex.shutdown(wait=True, cancel_futures=True)  # the running chunks finish (bounded), the rest are dropped


def _decode_all(listing: FolderListing, size_hw: tuple[int, int], out: Path, offset: int, workers: int,
                progress: bool) -> tuple[np.ndarray, list[bytes], list[str]]:
    from tqdm import tqdm

    n = len(listing.files)
    workers = max(1, min(workers, math.ceil(n / 64)))  # a pool is not worth it for a handful of files
    chunk = max(1, min(CHUNK_FILES, math.ceil(n / (4 * workers))))
    bounds = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    ok, digests, errors = np.zeros(n, dtype=bool), [b""] * n, []
    bar = tqdm(total=n, unit="img", desc=f"caching {listing.root.name}", file=sys.stderr, disable=not progress,
               mininterval=0.5, dynamic_ncols=True)

    def on_result(res: tuple[int, np.ndarray, list[bytes], list[str]]) -> None:
        start, ok_c, dig_c, err_c = res
        ok[start : start + len(ok_c)] = ok_c
        digests[start : start + len(ok_c)] = dig_c
        errors.extend(err_c)
        bar.update(len(ok_c))

    with bar:
        _run_chunks((listing.root, listing.files, size_hw, str(out), offset), bounds, workers, on_result)
    return ok, digests, errors


def _keep_rows(src: Path, src_offset: int, ok: np.ndarray, dst: Path, shape_hw: tuple[int, int]) -> None:
    """``dst`` = the rows of ``src`` where ``ok`` (file reads in runs, not a memory map: bounded RSS)."""
    rb = shape_hw[0] * shape_hw[1]
    out = np.lib.format.open_memmap(dst, mode="w+", dtype=np.uint8, shape=(int(ok.sum()), *shape_hw))
    dst_offset = out.offset
    del out
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ok.astype(np.int8), [0]))))
    step = max(1, _COPY_BYTES // max(rb, 1))
    pos = 0
    with open(src, "rb") as fs, open(dst, "r+b") as fd:
        for a, b in zip(edges[::2], edges[1::2]):
            for s in range(a, b, step):
                e = min(s + step, b)
                rows = os.pread(fs.fileno(), (e - s) * rb, src_offset + s * rb)
                _pwrite_all(fd.fileno(), rows, dst_offset + pos * rb)
                pos += e - s
    src.unlink()


def _build(listing: FolderListing, size_hw: tuple[int, int], dest: Path, workers: int, progress: bool) -> None:
    """Decode the folder into ``dest`` (a folder that appears only when complete)."""
    n, (h, w) = len(listing.files), size_hw
    free = shutil.disk_usage(dest.parent).free
    if n * h * w > free:
        raise DataError(f"{dest.parent}: {n * h * w / 1e9:.2f} GB needed for the image cache, "
                        f"{free / 1e9:.2f} GB free; pass another cache_dir")
    t0 = time.perf_counter()
    tmp = dest.parent / f".tmp-{secrets.token_hex(8)}"
    tmp.mkdir()  # mode 0777 less the umask, as any folder (mkdtemp would make it private)
    try:
        full = np.lib.format.open_memmap(tmp / "all.npy", mode="w+", dtype=np.uint8, shape=(n, h, w))
        offset = full.offset  # created sparse; the workers write their rows at their place
        del full
        ok, digests, errors = _decode_all(listing, size_hw, tmp / "all.npy", offset, workers, progress)
        if not ok.any():
            _warn_skipped(listing.root, errors)
            raise DataError(f"{listing.root}: no readable images; expected files with extensions "
                            f"{', '.join(image_folder.IMAGE_EXTENSIONS)} (directly or in one sub-folder per class)")
        if ok.all():
            os.rename(tmp / "all.npy", tmp / "images.npy")
        else:
            _keep_rows(tmp / "all.npy", offset, ok, tmp / "images.npy", (h, w))
        np.save(tmp / "labels.npy", listing.labels[ok])
        content = hashlib.sha256()  # the same hash as load_image_folder's provenance["content_sha256"]
        for rel, d in zip(listing.files, digests):
            if d:
                content.update(rel.encode() + b"\0" + d)
        meta = {"format": "vae-folder-cache", "version": FORMAT_VERSION, "key": listing.key,
                "root": str(listing.root), "image_size": [h, w], "n_images": int(ok.sum()), "n_files": n,
                "label_names": listing.label_names, "skipped": errors, "content_sha256": content.hexdigest(),
                "build_seconds": round(time.perf_counter() - t0, 3)}
        (tmp / "meta.json").write_text(json.dumps(meta))
        for f in ("images.npy", "labels.npy", "meta.json"):
            with open(tmp / f, "rb") as fh:
                os.fsync(fh.fileno())
        os.rename(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _warn_skipped(root: Path, skipped: list[str]) -> None:
    if skipped:
        shown = "; ".join(skipped[:10]) + (f"; and {len(skipped) - 10} more" if len(skipped) > 10 else "")
        warnings.warn(f"{root}: skipped {len(skipped)} unreadable image file(s): {shown}", DataWarning, stacklevel=3)


def read_cache(path: Path, listing: FolderListing | None = None,
               size_hw: tuple[int, int] | None = None) -> tuple[np.memmap, np.ndarray, dict] | None:
    """``(images, labels, meta)`` of the cache folder ``path``: ``images`` a read-only np.memmap
    (N, H, W) uint8, ``labels`` (N,) int64. None when it is missing, of another listing or size, or
    damaged in a way that shows without reading the pixels (a damaged cache is rebuilt, never used)."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        images = np.load(path / "images.npy", mmap_mode="r")
        labels = np.load(path / "labels.npy", mmap_mode="r")
    except (OSError, ValueError):  # missing, truncated, not JSON, not .npy, object arrays, ...
        return None

    def strings(v) -> bool:
        return isinstance(v, list) and all(isinstance(s, str) for s in v)

    try:
        n, (h, w) = int(meta["n_images"]), meta["image_size"]
        good = (meta["format"] == "vae-folder-cache" and meta["version"] == FORMAT_VERSION
                and (listing is None or (meta["key"], meta["label_names"], meta["n_files"])
                     == (listing.key, listing.label_names, len(listing.files)))
                and (size_hw is None or [h, w] == list(size_hw))
                and (meta["label_names"] is None or strings(meta["label_names"])) and strings(meta["skipped"])
                and isinstance(meta["content_sha256"], str) and len(meta["content_sha256"]) == 64
                and isinstance(images, np.memmap) and images.dtype == np.uint8 and images.shape == (n, h, w)
                and labels.dtype == np.int64 and labels.shape == (n,))
    except (KeyError, TypeError, ValueError):
        return None
    return (images, np.array(labels), meta) if good else None


# --------------------------------------------------------------------------- the dataset


def folder_cache_home(root: Path, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding ``root``'s caches: ``<cache_dir>/folders/<name>-<hash of the absolute path>``."""
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    resolved = root.resolve()
    return base / "folders" / f"{resolved.name or 'root'}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:12]}"


@contextmanager
def _locked(home: Path):
    """One builder per cache folder at a time (flock: released by the kernel if the holder dies)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _remove_stale(home: Path, prefix: str) -> None:
    """Under the lock: delete interrupted builds and the superseded caches of this image size (a
    process still reading one keeps its open map; the files go when it closes them)."""
    for p in home.iterdir():
        if p.is_dir() and (p.name.startswith(".tmp-") or p.name.startswith(prefix)):
            shutil.rmtree(p, ignore_errors=True)


def _check_args(folder, image_size, test_fraction) -> tuple[Path, tuple[int, int]]:
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected a folder of images (optionally one sub-folder per class)")
    h, w = int(image_size[0]), int(image_size[1])
    if h < 1 or w < 1:
        raise DataError(f"image_size {image_size}: expected positive (H, W)")
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test_fraction {test_fraction}: expected 0 <= test_fraction < 1")
    return root, (h, w)


def open_folder_dataset(
    folder: str | os.PathLike,
    image_size: tuple[int, int] = (28, 28),
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> FolderDataset:
    """``load_image_folder(folder, image_size, test_fraction, seed)`` through the on-disk cache.

    Builds the cache when the folder (file list, sizes, mtimes), the size or the conversion changed,
    with ``workers`` processes (default: the CPUs this process may use); reuses it otherwise.
    Unreadable images are skipped with one DataWarning; no readable image at all is a DataError.
    """
    root, size_hw = _check_args(folder, image_size, test_fraction)
    listing = list_folder(root, size_hw)
    if not listing.files:
        exts = ", ".join(image_folder.IMAGE_EXTENSIONS)
        raise DataError(f"{root}: no readable images; expected files with extensions {exts} "
                        "(directly or in one sub-folder per class)")
    home = folder_cache_home(root, cache_dir)
    prefix = f"{size_hw[0]}x{size_hw[1]}-"
    path = home / (prefix + listing.key)
    cache, built = read_cache(path, listing, size_hw), False
    if cache is None:
        try:
            with _locked(home):
                cache = read_cache(path, listing, size_hw)  # another process may have built it meanwhile
                if cache is None:
                    _remove_stale(home, prefix)
                    _build(listing, size_hw, path, workers or len(os.sched_getaffinity(0)), progress)
                    built = True
                    cache = read_cache(path, listing, size_hw)
        except OSError as e:  # the folder's own files cannot raise here: their errors are per-file skips
            raise DataError(f"{home}: cannot write the image cache ({type(e).__name__}: {one_line(e)}); "
                            "pass another cache_dir or set VAE_CACHE_DIR") from None
        if cache is None:
            raise DataError(f"{path}: the cache just built does not read back; was it changed meanwhile?")
    images, labels, meta = cache
    _warn_skipped(root, meta["skipped"])
    return _split(root, images, labels, meta, test_fraction, seed, path, built)


def _split(root: Path, images: np.memmap, labels: np.ndarray, meta: dict, test_fraction: float, seed: int,
           path: Path, built: bool) -> FolderDataset:
    """The folder loader's stratified split (trainer.image_folder._split_indices) over the cached rows."""
    is_test = image_folder._split_indices(labels, test_fraction, seed)
    train_rows, test_rows = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    h, w = images.shape[1:]
    provenance = {
        "dataset": "folder", "root": str(root.resolve()), "n_images": len(labels), "n_train": len(train_rows),
        "n_test": len(test_rows), "content_sha256": meta["content_sha256"], "checksum": "user-files",
        "skipped": meta["skipped"],
        "conversion": f"grayscale (alpha on white, 16-bit scaled), stretched to {h}x{w} with Lanczos",
        "split": f"per label, round(n * {test_fraction}) random images are test "
        f"(numpy default_rng seed {seed}), at least one train image per label",
        "cache": {"path": str(path), "key": meta["key"], "version": FORMAT_VERSION},
    }
    return FolderDataset(
        name="folder",
        train_x=MemmapImages(images, train_rows),
        train_y=torch.from_numpy(labels[train_rows]),
        test_x=MemmapImages(images, test_rows).load(),
        test_y=torch.from_numpy(labels[test_rows]),
        image_shape=(int(h), int(w)),
        label_names=meta["label_names"],
        provenance=provenance,
        cache_path=path,
        built=built,
    )
