"""The dataset's own test images, when the data folder is on this machine (optional).

Checkpoints carry no images, only encodings; the app shows originals beside reconstructions
when ``trainer.data`` can read the dataset from ``$VAE_DATA_DIR`` (or its default folder).
Anything missing gives ``(None, reason)``, never an exception, so the app works without data.
"""

from __future__ import annotations

import os
import warnings

import numpy as np


def load_test_images(dataset: str, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray | None, str | None]:
    """The test split of ``dataset`` ("mnist" or "frey") as float32 (M, H, W) in [0, 1], or
    ``(None, one-line reason)`` when it is not available here."""
    if dataset not in ("mnist", "frey"):
        return None, f"original images are only looked up for MNIST and Frey Face, not {dataset or 'unknown'!r}"
    try:
        from trainer.data import DataError, default_data_dir, load_dataset
    except ImportError as e:  # the loader is part of the trainer; keep the app usable without it
        return None, f"dataset loader unavailable: {e}"
    root = data_dir if data_dir is not None else default_data_dir()
    try:
        with warnings.catch_warnings():
            # An unofficial-but-valid checksum is the trainer's concern; for showing images it is fine.
            warnings.simplefilter("ignore")
            ds = load_dataset(dataset, root)
    except (DataError, OSError, ValueError) as e:
        return None, f"original {dataset} images not available: {str(e).splitlines()[0]}"
    x = ds.test_x.numpy() if hasattr(ds.test_x, "numpy") else np.asarray(ds.test_x)
    return x.astype(np.float32) / 255.0, None


def originals_for_rows(test_images: np.ndarray, test_index: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
    """Original images (k, H, W) of checkpoint rows ``rows`` (k,), through the stored
    ``test_index`` (N,) into the dataset's test split (M, H, W); None if an index is out of range
    (a checkpoint made from a different copy of the data)."""
    idx = np.asarray(test_index)[np.asarray(rows, dtype=np.int64)]
    if idx.size and (idx.min() < 0 or idx.max() >= test_images.shape[0]):
        return None
    return test_images[idx]
