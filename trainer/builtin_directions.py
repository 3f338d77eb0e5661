"""The built-in directions of the shipped datasets, computed from a checkpoint and stored in it.

The maths (fits, held-out quality, the stored form) is :mod:`trainer.directions`; this module
knows the datasets: which attributes and labels each one has and how to read them.

Built-in directions:

- MNIST: ``slant``, ``thickness``, ``width``, ``height`` (measured on the test images with
  :mod:`trainer.attributes`), methods ``mean_difference`` (top vs bottom quartile) and
  ``regression``; ``digit<k>`` (k vs the rest), methods ``mean_difference`` and ``classifier``.
  Cross-validation: 5 random folds of the 10,000 test images.
- Frey Face: ``smile`` (1 vs 0), methods ``mean_difference`` and ``classifier``; ``pose``:
  ``mean_difference`` and ``classifier`` between turned-right (+1) and turned-left (-1) frames
  (frontal frames left out), and ``regression`` onto -1/0/+1 with every labelled frame.
  Positive amounts mean more smile / turned more to the viewer's right. The labelled frames
  (``trainer/labels``, every 5th frame, ambiguous ones dropped) are encoded by the model.
  Cross-validation groups frames by 100-frame block (5 folds of whole blocks), because
  neighbouring frames are near-duplicates and a random split would flatter every score.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from trainer.directions import direction_entry, store_directions


def _mnist_directions(ck, data_dir) -> tuple[dict, dict]:
    from trainer.attributes import ATTRIBUTES, DESCRIPTIONS, LABELS, UNITS, measure_batch
    from trainer.data import load_dataset

    mu = ck.arrays["test_mu"].numpy().astype(np.float64)
    ds = load_dataset("mnist", data_dir)
    index = ck.arrays.get("test_index")
    rows = index.numpy() if index is not None else np.arange(mu.shape[0])
    if rows.max(initial=-1) >= ds.test_x.shape[0] or mu.shape[0] != rows.shape[0]:
        raise ValueError(f"{ck.path}: test arrays do not match the local MNIST test split")
    images = ds.test_x.numpy()[rows]
    attrs = measure_batch(images)
    arrays, meta = {}, {}
    for name in ATTRIBUTES:
        v = attrs[name]
        ok = np.isfinite(v)
        meta[name] = {}
        for method in ("mean_difference", "regression"):
            d, entry = direction_entry(
                method, mu[ok], v[ok], mu, label=LABELS[name], description=DESCRIPTIONS[name],
                unit_name=UNITS[name],
                source=f"{name} measured (trainer.attributes) on {int(ok.sum())} MNIST test images",
            )
            arrays[f"{name}.{method}"] = d
            meta[name][method] = entry
    labels = ck.arrays["test_labels"].numpy()
    for k in range(10):
        y = labels == k
        if y.all() or not y.any():
            continue
        name = f"digit{k}"
        meta[name] = {}
        for method in ("mean_difference", "classifier"):
            d, entry = direction_entry(
                method, mu, y, mu, label=f"Digit {k}", description=f"Towards digit {k}, away from the other digits.",
                unit_name="", source=f"MNIST test labels: {int(y.sum())} images of {k} vs {int((~y).sum())} others",
            )
            arrays[f"{name}.{method}"] = d
            meta[name][method] = entry
    return arrays, meta


def frey_frames(frames: np.ndarray, data_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Frey Face frames by index into the full 1965-frame video: (K,) -> (K, 28, 20) uint8."""
    from trainer.data import load_frey_video

    return load_frey_video(data_dir)[np.asarray(frames, dtype=np.int64)]


def encode_frey_frames(ck, frames: np.ndarray, data_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Latent means (K, J) float64 of Frey Face frames (K,) (indices into the full video)."""
    import torch

    x = frey_frames(frames, data_dir)
    with torch.no_grad():
        mu, _ = ck.model.encode(torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0))
    return mu.numpy().astype(np.float64)


def _frey_directions(ck, data_dir) -> tuple[dict, dict]:
    from trainer.data import FREY_BLOCK
    from trainer.labels import LABELS_PATH, load_frey_labels

    lab = load_frey_labels(drop_ambiguous=True)
    frames = lab["frame"]
    z = encode_frey_frames(ck, frames, data_dir)
    groups = frames // FREY_BLOCK
    mu_test = ck.arrays["test_mu"].numpy().astype(np.float64)
    src = f"{Path(LABELS_PATH).name}: {len(frames)} hand-labelled frames (ambiguous dropped), encoded by this model"
    arrays, meta = {}, {"smile": {}, "pose": {}}
    smile = lab["smile"] == 1
    for method in ("mean_difference", "classifier"):
        d, entry = direction_entry(
            method, z, smile, mu_test, label="Smile", description="From a neutral mouth towards a smile.",
            unit_name="", source=src, groups=groups,
        )
        arrays[f"smile.{method}"] = d
        meta["smile"][method] = entry
    pose = lab["pose"]
    turned = pose != 0
    pose_desc = "Head turned towards the viewer's right (positive) or left (negative)."
    for method in ("mean_difference", "classifier"):
        d, entry = direction_entry(
            method, z[turned], pose[turned] == 1, mu_test, label="Pose",
            description=pose_desc + " Fitted on turned-right vs turned-left frames.",
            unit_name="", source=src + f"; right vs left only ({int(turned.sum())} frames)", groups=groups[turned],
        )
        arrays[f"pose.{method}"] = d
        meta["pose"][method] = entry
    d, entry = direction_entry(
        "regression", z, pose.astype(np.float64), mu_test, label="Pose",
        description=pose_desc + " Regression onto left -1 / frontal 0 / right +1.",
        unit_name="", source=src, groups=groups,
    )
    arrays["pose.regression"] = d
    meta["pose"]["regression"] = entry
    return arrays, meta


def compute_directions(ck, data_dir: str | os.PathLike | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The built-in directions of a loaded :class:`trainer.checkpoint.Checkpoint`.

    Returns (arrays, meta): arrays ``"<name>.<method>"`` -> (J,) float32 unit vectors, meta
    ``{name: {method: entry}}`` (see :func:`direction_entry`). ``data_dir``: the datasets
    folder (default :func:`trainer.data.default_data_dir`). Raises ValueError for a dataset
    without built-in directions or a checkpoint without ``test_mu``."""
    from threadpoolctl import threadpool_limits
    dataset = ck.meta.get("dataset")
    if "test_mu" not in ck.arrays:
        raise ValueError(f"{ck.path}: no test_mu array; retrain it with the current trainer")
    # One BLAS thread: the fits are small, and a threaded BLAS on a busy 2-core machine
    # spends far longer waiting for its threads than computing.
    with threadpool_limits(1):
        if dataset == "mnist":
            return _mnist_directions(ck, data_dir)
        if dataset == "frey":
            return _frey_directions(ck, data_dir)
    raise ValueError(f"{ck.path}: no built-in directions for dataset {dataset!r} (only mnist and frey)")


def build_directions(checkpoint_path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> dict:
    """Compute the built-in directions of a checkpoint file and store them in it.

    Returns the ``meta["directions"]`` dict that was written."""
    from trainer.checkpoint import load_checkpoint

    ck = load_checkpoint(checkpoint_path)
    arrays, meta = compute_directions(ck, data_dir)
    store_directions(checkpoint_path, arrays, meta)
    return meta


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def summary_lines(meta: dict) -> list[str]:
    """One line per stored direction with its headline quality score (for the CLI)."""
    lines = []
    for name, methods in meta.items():
        for method, e in methods.items():
            q = e.get("quality", {})
            if e.get("kind") == "binary":
                score = f"acc {_fmt(q.get('accuracy'))} (majority {_fmt(q.get('majority'))}), AUC {_fmt(q.get('auc'))}"
            else:
                score = f"R2 {_fmt(q.get('r2'))}, Spearman {_fmt(q.get('spearman'))}"
            lines.append(f"  {name:10s} {method:16s} {score}  (n={q.get('n')}, {e.get('cv')})")
    return lines
