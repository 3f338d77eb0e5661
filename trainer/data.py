"""Datasets: MNIST (IDX files), Frey Face (``frey_rawface.mat``) and a folder of images.

Every loader returns an :class:`ImageDataset` holding whole uint8 tensors in memory
(``train_x`` (N, H, W), ``test_x`` (M, H, W)) plus a JSON-serialisable ``provenance`` dict that
records which files were read (path, size, sha256, checksum status), where they were downloaded
from, and the train/test split rule. Checkpoints copy that dict into their metadata.

Where the files are looked up (``data_dir``; see :func:`default_data_dir`):

- MNIST: ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
  ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz`` in ``data_dir/mnist/``, then in
  ``data_dir/`` (un-gzipped copies with the same names minus ``.gz`` are accepted too).
  Official 60000 / 10000 split.
- Frey Face: ``frey_rawface.mat`` in ``data_dir/frey/``, then ``data_dir/``. Variable ``ff``
  (560, N) uint8, frame ``i`` is ``ff[:, i].reshape(28, 20)``. Split: every 10th frame
  (index % 10 == 0) is test, 197 of 1965; labels are frame indices in the original sequence.
  :func:`load_frey_video` gives the whole video in frame order (for labels and directions).
- Folder: any images Pillow reads, converted to grayscale and resized; labels from sub-folders
  (:mod:`trainer.image_folder`; training reads it through :mod:`trainer.folder_cache`).

:func:`load_dataset` is the one place that decides between a named dataset and a folder.

Checksums: a user-supplied MNIST file whose md5 is not the official one is used with a
:class:`DataWarning` (its IDX header and shapes are still checked, and provenance says
``"unknown-but-valid-header"``); a *downloaded* file that fails its checksum is refused.
No checksum of the original ``frey_rawface.mat`` is published anywhere we could find, so a
downloaded Frey file is verified by structure instead (it must load with ``ff`` of shape
(560, 1965)) before it is renamed into place.

Downloads (``download=True``, :mod:`trainer.downloads`) fetch only missing files, with urllib, to a temporary file in
the destination folder that is fsynced, verified and then renamed; the environment variable
``VAE_DATA_MIRROR`` replaces the source base URL (files then come from
``<mirror>/mnist/<file>`` and ``<mirror>/frey/frey_rawface.mat``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent

MNIST_BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FREY_URL = "https://cs.nyu.edu/~roweis/data/frey_rawface.mat"
FREY_FILE = "frey_rawface.mat"
FREY_SHAPE = (28, 20)  # (H, W) of one frame
FREY_N_FRAMES = 1965  # frames in the original video
FREY_TEST_EVERY = 10  # frame index % 10 == 0 is the test split
# Neighbouring frames are near-duplicates, so cross-validation on Frey Face keeps whole blocks of
# this many consecutive frames together (fold group of frame i: i // FREY_BLOCK).
FREY_BLOCK = 100

DATASETS = ("mnist", "frey", "folder")  # what load_dataset (and TrainConfig.dataset) accepts
MNIST_SHAPE = (28, 28)

# role -> file name; roles are the keys of provenance["files"].
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
# Official md5 of each original file (LeCun's page; the same files torchvision verifies).
# Looked up at call time, so tests may monkeypatch it.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension



class DataError(ValueError):
    """A dataset file that cannot be used; the one-line message names it and what was expected."""


class DataWarning(UserWarning):
    """Data that is used but is not exactly what was expected (e.g. an unofficial checksum)."""


def one_line(e: BaseException) -> str:
    """An exception's message on one line (for errors that quote a library's own words)."""
    return " ".join(str(e).split()) or type(e).__name__


@dataclass
class ImageDataset:
    """A whole dataset in memory.

    ``train_x`` (N, H, W) uint8, ``train_y`` (N,) int64, ``test_x`` (M, H, W) uint8,
    ``test_y`` (M,) int64. Labels: MNIST digit; Frey frame index in the original sequence;
    folder: class index into ``label_names`` or -1 for unlabelled images.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    image_shape: tuple[int, int]
    label_names: list[str] | None
    provenance: dict


def default_data_dir() -> Path:
    """The datasets folder: ``$VAE_DATA_DIR``; else ``<project root>/../shared/data`` if that
    exists; else ``<project root>/data`` (where downloads go by default)."""
    env = os.environ.get("VAE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    shared = PROJECT_ROOT.parent / "shared" / "data"
    if shared.is_dir():
        return shared
    return PROJECT_ROOT / "data"


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    image_folder: str | os.PathLike | None = None,
    download: bool = False,
    image_size: tuple[int, int] = (28, 28),
    test_fraction: float = 0.1,
    seed: int = 0,
    cached: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> ImageDataset:
    """Load ``"mnist"``, ``"frey"`` or ``"folder"``: the one place that decides where a run's data
    comes from (the trainer, ``python -m trainer evaluate`` and the app's originals call it).

    Named datasets are read from ``data_dir`` (``None``: :func:`default_data_dir`), fetching
    missing files when ``download`` is true; they have fixed sizes and splits. ``"folder"`` reads
    ``image_folder`` (or, when that is None, ``data_dir`` itself) at ``image_size`` (H, W), with
    ``test_fraction`` and ``seed`` for its split; ``download`` does not apply to it. With ``cached``
    (the trainer) it goes through :func:`trainer.folder_cache.open_folder_dataset`: the same images
    and split, decoded once into ``cache_dir`` (``progress``: its build's bar), ``train_x`` a
    memory-mapped :class:`~trainer.memmap_images.MemmapImages` that is read a batch at a time.
    """
    if name == "folder":
        folder = image_folder if image_folder is not None else data_dir
        if folder is None:
            raise DataError("dataset 'folder' needs the image folder (image_folder, or data_dir)")
        if cached:
            from trainer.folder_cache import open_folder_dataset  # it imports this module

            return open_folder_dataset(folder, image_size, test_fraction=test_fraction, seed=seed,
                                       cache_dir=cache_dir, progress=progress)
        from trainer.image_folder import load_image_folder  # it imports this module

        return load_image_folder(folder, image_size=image_size, test_fraction=test_fraction, seed=seed)
    root = default_data_dir() if data_dir is None else data_dir
    if name == "mnist":
        return load_mnist(root, download=download)
    if name == "frey":
        return load_frey(root, download=download)
    raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(map(repr, DATASETS))}")


def image_shape_of(name: str, image_size: tuple[int, int] = (28, 28)) -> tuple[int, int]:
    """(H, W) of what :func:`load_dataset` returns for ``name``, known without loading anything:
    MNIST 28x28, Frey Face 28x20, a folder ``image_size``."""
    return {"mnist": MNIST_SHAPE, "frey": FREY_SHAPE}.get(name, (int(image_size[0]), int(image_size[1])))


# --------------------------------------------------------------------------- MNIST


def _find(data_dir: Path, subdir: str, names: tuple[str, ...]) -> Path | None:
    for folder in (data_dir / subdir, data_dir):
        for n in names:
            if (folder / n).is_file():
                return folder / n
    return None


def _file_record(path: Path, raw: bytes) -> dict:
    return {
        "path": str(path.resolve()),
        "size": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "md5": hashlib.md5(raw, usedforsecurity=False).hexdigest(),
    }


def _read_idx(path: Path, raw: bytes, magic: int, item_dims: tuple[int, ...]) -> np.ndarray:
    """Parse IDX bytes (gzipped if ``path`` ends in .gz) into (n, *item_dims) uint8."""
    what = "IDX images" if magic == IDX_IMAGES_MAGIC else "IDX labels"
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(
                f"{path}: not a complete gzip file ({one_line(e)}); expected gzipped {what}"
            ) from None
    ndim = 1 + len(item_dims)
    header_len = 4 + 4 * ndim
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes, too short for an IDX header; expected {what}")
    got_magic = int.from_bytes(raw[:4], "big")
    if got_magic != magic:
        raise DataError(f"{path}: IDX magic number {got_magic}, expected {magic} ({what}, uint8, {ndim}-D)")
    if len(raw) < header_len:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes); expected {header_len}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if dims[1:] != item_dims:
        raise DataError(f"{path}: IDX dimensions {dims}, expected (n, {', '.join(map(str, item_dims))})")
    payload = len(raw) - header_len
    want = int(np.prod(dims))
    if payload != want:
        raise DataError(f"{path}: IDX payload is {payload} bytes, header {dims} says {want}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims).copy()


def _mnist_file(data_dir: Path, role: str, fname: str, download: bool) -> tuple[dict, np.ndarray]:
    """One MNIST IDX file, found in ``data_dir`` (or downloaded), read and checked:
    ``(provenance record, array)``; images (N, 28, 28) or labels (N,), uint8."""
    path = _find(data_dir, "mnist", (fname, fname[: -len(".gz")]))
    url = None
    if path is None:
        if not download:
            raise DataError(
                f"MNIST file {fname} not found in {data_dir / 'mnist'} or {data_dir}; "
                "pass download=True (or set VAE_DATA_DIR to a folder that has it)"
            )
        from trainer.downloads import download_file, mirror_url  # it imports this module

        url = mirror_url("mnist", fname) or MNIST_BASE_URL + fname
        path = download_file(url, data_dir / "mnist" / fname, md5=MNIST_MD5.get(fname))
    raw = path.read_bytes()
    rec = _file_record(path, raw)
    is_images = role.endswith("images")
    arr = _read_idx(path, raw, IDX_IMAGES_MAGIC if is_images else IDX_LABELS_MAGIC, (28, 28) if is_images else ())
    official = MNIST_MD5.get(fname)
    if official is not None and rec["md5"] == official:
        rec["checksum"] = "official"
    else:
        rec["checksum"] = "unknown-but-valid-header"
        warnings.warn(
            f"{path}: md5 {rec['md5']} is not the official {official} for {fname}; "
            "its IDX header and shape are valid, so it is used",
            DataWarning,
            stacklevel=3,  # load_mnist's caller
        )
    if url is not None:
        rec["url"] = url
    return rec, arr


def load_mnist(data_dir: str | os.PathLike | None = None, download: bool = False) -> ImageDataset:
    """Load MNIST from IDX files: train (60000, 28, 28) / test (10000, 28, 28) uint8, digit labels.

    Missing files are downloaded to ``data_dir/mnist/`` when ``download`` is true (from
    :data:`MNIST_BASE_URL` or ``$VAE_DATA_MIRROR/mnist/``) and must match :data:`MNIST_MD5`.
    Files found locally are checked by header and shape; an md5 other than the official one
    gives a :class:`DataWarning` and ``checksum: "unknown-but-valid-header"`` in provenance.
    """
    data_dir = Path(default_data_dir() if data_dir is None else data_dir).expanduser()
    files: dict[str, dict] = {}
    arrays: dict[str, np.ndarray] = {}
    for role, fname in MNIST_FILES.items():
        files[role], arrays[role] = _mnist_file(data_dir, role, fname, download)
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise DataError(
                f"{files[f'{split}_labels']['path']}: {n_lab} labels for {n_img} images in "
                f"{files[f'{split}_images']['path']}; expected equal counts"
            )
        labels = arrays[f"{split}_labels"]
        if labels.size and labels.max() > 9:
            path = files[f"{split}_labels"]["path"]
            raise DataError(f"{path}: label {int(labels.max())}, expected digits 0-9")
    return ImageDataset(
        name="mnist",
        train_x=torch.from_numpy(arrays["train_images"]),
        train_y=torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        test_x=torch.from_numpy(arrays["test_images"]),
        test_y=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        image_shape=(28, 28),
        label_names=[str(d) for d in range(10)],
        provenance={
            "dataset": "mnist",
            "files": files,
            "n_train": int(len(arrays["train_images"])),
            "n_test": int(len(arrays["test_images"])),
            "split": "official MNIST split: train-* files are train, t10k-* files are test",
        },
    )


# --------------------------------------------------------------------------- Frey Face


def _read_frey_mat(path: Path, n_frames: int | None = None) -> np.ndarray:
    """Read ``ff`` from a .mat file and return frames (N, 28, 20) uint8.

    ``n_frames``: if given, ``ff`` must have exactly that many columns.
    """
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path), variable_names=["ff"])
    except Exception as e:  # scipy raises ValueError, OSError, MatReadError, NotImplementedError (v7.3)
        raise DataError(
            f"{path}: cannot read as a MATLAB .mat file ({one_line(e)}); expected frey_rawface.mat with "
            "variable 'ff' (560 x N uint8)"
        ) from None
    if "ff" not in mat:
        raise DataError(f"{path} has no variable 'ff'; expected 'ff' of shape (560, N) uint8 (Frey Face)")
    ff = mat["ff"]
    h, w = FREY_SHAPE
    cols = "N" if n_frames is None else str(n_frames)
    if not isinstance(ff, np.ndarray) or ff.ndim != 2 or ff.shape[0] != h * w or ff.shape[1] < 1:
        shape = getattr(ff, "shape", type(ff).__name__)
        raise DataError(f"{path}: variable 'ff' has shape {shape}, expected ({h * w}, {cols})")
    if n_frames is not None and ff.shape[1] != n_frames:
        raise DataError(f"{path}: variable 'ff' has shape {ff.shape}, expected ({h * w}, {n_frames})")
    if ff.dtype != np.uint8:
        numeric = ff.dtype.kind in "uif" and bool(np.all(np.isfinite(ff)))
        if not numeric or ff.min() < 0 or ff.max() > 255 or not np.all(ff == np.round(ff)):
            raise DataError(
                f"{path}: variable 'ff' ({ff.dtype}) has values that are not integers 0-255; expected uint8"
            )
        ff = ff.astype(np.uint8)
    return np.ascontiguousarray(ff.T).reshape(-1, h, w)


def _frey_file(data_dir: str | os.PathLike | None, download: bool) -> tuple[Path, str | None]:
    """Where ``frey_rawface.mat`` is (downloading it if asked and missing): (path, url or None)."""
    data_dir = Path(default_data_dir() if data_dir is None else data_dir).expanduser()
    path = _find(data_dir, "frey", (FREY_FILE,))
    if path is not None:
        return path, None
    if not download:
        raise DataError(
            f"Frey Face file {FREY_FILE} not found in {data_dir / 'frey'} or {data_dir}; "
            "pass download=True (or set VAE_DATA_DIR to a folder that has it)"
        )
    from trainer.downloads import download_file, mirror_url  # it imports this module

    url = mirror_url("frey", FREY_FILE) or FREY_URL
    path = download_file(
        url, data_dir / "frey" / FREY_FILE, validate=lambda p: _read_frey_mat(p, n_frames=FREY_N_FRAMES)
    )
    return path, url


def load_frey_video(data_dir: str | os.PathLike | None = None, download: bool = False) -> np.ndarray:
    """Every Frey Face frame in video order: (N, 28, 20) uint8, frame ``i`` at index ``i``
    (N = :data:`FREY_N_FRAMES` for the original file). Frame indices are what
    :func:`load_frey` uses as labels and what ``trainer/labels`` refers to."""
    return _read_frey_mat(_frey_file(data_dir, download)[0])


def load_frey(data_dir: str | os.PathLike | None = None, download: bool = False) -> ImageDataset:
    """Load Frey Face: frames (28, 20) uint8; train 1768 / test 197 frames (every 10th is test).

    Labels are frame indices in the original sequence (so nearby labels are similar faces).
    A download (from :data:`FREY_URL` or ``$VAE_DATA_MIRROR/frey/``) has no published checksum
    to check against, so it is verified by structure: ``ff`` must be (560, 1965).
    """
    path, url = _frey_file(data_dir, download)
    rec = _file_record(path, path.read_bytes())
    frames = _read_frey_mat(path)
    rec["checksum"] = "no-published-checksum-valid-structure"
    if url is not None:
        rec["url"] = url
    idx = np.arange(len(frames))
    is_test = idx % FREY_TEST_EVERY == 0
    return ImageDataset(
        name="frey",
        train_x=torch.from_numpy(frames[~is_test].copy()),
        train_y=torch.from_numpy(idx[~is_test].astype(np.int64)),
        test_x=torch.from_numpy(frames[is_test].copy()),
        test_y=torch.from_numpy(idx[is_test].astype(np.int64)),
        image_shape=FREY_SHAPE,
        label_names=None,
        provenance={
            "dataset": "frey",
            "files": {"frames": rec},
            "n_train": int((~is_test).sum()),
            "n_test": int(is_test.sum()),
            "split": f"frame index % {FREY_TEST_EVERY} == 0 is test, the rest train; "
            "labels are frame indices",
        },
    )
