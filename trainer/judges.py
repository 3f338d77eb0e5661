"""The Frey Face "judge": smile and pose classifiers on PIXELS, to check latent directions.

A latent smile direction is fitted on latent means, so it cannot be judged by a classifier on
latents (that would grade it with its own measure). The judge instead looks at images: it is
trained on the hand-labelled frames' pixels (``trainer/labels``), and scores decoded images
along a sweep (``bench/directions_quality.py``): if the smile direction works, the judge's
smile score rises as the sweep goes on.

Each classifier: pixels in [0, 1] -> standardise -> PCA (30 components) -> logistic regression
(C = 0.1), the setup the labels README found learnable across blocks. Scores are logits, not
probabilities, so they do not saturate (ties would blunt rank correlations):

- ``smile``: log P(smile) / P(no smile); > 0 means "smiling".
- ``pose``: log P(right) / P(left) from a three-class (-1/0/+1) model; > 0 leans right (the
  viewer's right). The predicted class is the most probable of left / frontal / right.

Held-out accuracy: 5-fold cross-validation grouped by 100-frame block (neighbouring frames
are near-duplicates, so a random split would flatter it); the final judge is refitted on all
labelled frames. Training takes well under a second.

    from trainer.judges import train_judge
    judge = train_judge()                  # uses trainer.data.default_data_dir()
    judge.quality["smile"]["accuracy"]
    judge.scores(images)                   # images (N, 28, 20) in [0, 1] -> {"smile": (N,), "pose": (N,)}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from trainer.data import FREY_BLOCK, FREY_SHAPE

JUDGED = ("smile", "pose")


def _pipeline(n_components: int, C: float) -> Pipeline:
    return make_pipeline(StandardScaler(), PCA(n_components=n_components, random_state=0),
                         LogisticRegression(C=C, max_iter=5000))


def _flat(images: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 2 and x.shape == FREY_SHAPE:
        x = x[None]
    if x.ndim != 3 or x.shape[1:] != FREY_SHAPE:
        raise ValueError(f"{name}: expected Frey Face images (N, 28, 20), got shape {x.shape}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    return x.reshape(x.shape[0], -1).astype(np.float64)


@dataclass
class FreyJudge:
    """Fitted pixel classifiers and their held-out scores.

    ``quality[name]``: {accuracy, balanced_accuracy, majority, folds, n, classes}."""

    smile: Pipeline
    pose: Pipeline
    quality: dict = field(default_factory=dict)

    def scores(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Continuous scores (logits) for images (N, 28, 20) in [0, 1] or uint8: each (N,)."""
        x = _flat(images, "FreyJudge.scores")
        with threadpool_limits(1):
            smile = self.smile.decision_function(x)
            lp = self.pose.predict_log_proba(x)
        cls = list(self.pose.classes_)
        pose = lp[:, cls.index(1)] - lp[:, cls.index(-1)]
        return {"smile": smile.astype(np.float64), "pose": pose.astype(np.float64)}

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Predicted labels: smile (N,) in {0, 1}, pose (N,) in {-1, 0, 1}."""
        x = _flat(images, "FreyJudge.predict")
        with threadpool_limits(1):
            return {"smile": self.smile.predict(x).astype(np.int64),
                    "pose": self.pose.predict(x).astype(np.int64)}


def _cv_scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_folds: int, n_components: int,
               C: float) -> dict:
    pred = np.empty_like(y)
    folds = GroupKFold(n_splits=min(n_folds, len(np.unique(groups))))
    used = 0
    for tr, te in folds.split(x, y, groups):
        pred[te] = _pipeline(n_components, C).fit(x[tr], y[tr]).predict(x[te])
        used += 1
    classes = np.unique(y)
    recalls = [float((pred[y == c] == c).mean()) for c in classes]
    counts = np.array([(y == c).sum() for c in classes])
    return {
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": float(np.mean(recalls)),
        "majority": float(counts.max() / counts.sum()),
        "folds": used,
        "n": int(len(y)),
        "classes": [int(c) for c in classes],
    }


def fit_judge(images: np.ndarray, smile: np.ndarray, pose: np.ndarray, groups: np.ndarray,
              n_folds: int = 5, n_components: int = 30, C: float = 0.1) -> FreyJudge:
    """Fit and cross-validate the judge on labelled images.

    images (K, 28, 20) in [0, 1] or uint8; smile (K,) in {0, 1}; pose (K,) in {-1, 0, 1};
    groups (K,) fold groups (e.g. frame // 100)."""
    x = _flat(images, "fit_judge")
    smile = np.asarray(smile, dtype=np.int64)
    pose = np.asarray(pose, dtype=np.int64)
    groups = np.asarray(groups)
    if not (len(smile) == len(pose) == len(groups) == len(x)):
        raise ValueError(f"fit_judge: {len(x)} images but {len(smile)} smile, {len(pose)} pose, "
                         f"{len(groups)} group labels")
    if set(np.unique(smile)) != {0, 1}:
        raise ValueError("fit_judge: smile labels must include both 0 and 1")
    if not {-1, 1} <= set(np.unique(pose)):
        raise ValueError("fit_judge: pose labels must include both -1 (left) and 1 (right)")
    n_components = min(n_components, x.shape[0] - 1, x.shape[1])
    # One BLAS thread: these matrices are tiny, and on a busy 2-core machine a threaded BLAS
    # spends ~50x longer waiting for its threads than computing.
    with threadpool_limits(1):
        return _fit_judge(x, smile, pose, groups, n_folds, n_components, C)


def _fit_judge(x, smile, pose, groups, n_folds, n_components, C) -> FreyJudge:
    quality = {
        "smile": _cv_scores(x, smile, groups, n_folds, n_components, C),
        "pose": _cv_scores(x, pose, groups, n_folds, n_components, C),
    }
    for q in quality.values():
        q["cv"] = f"grouped by {FREY_BLOCK}-frame block"
    return FreyJudge(
        smile=_pipeline(n_components, C).fit(x, smile),
        pose=_pipeline(n_components, C).fit(x, pose),
        quality=quality,
    )


def train_judge(data_dir: str | os.PathLike | None = None, labels: dict | None = None, n_folds: int = 5) -> FreyJudge:
    """The judge fitted on the labelled Frey Face frames (ambiguous ones dropped).

    ``labels``: a dict as from :func:`trainer.labels.load_frey_labels` (default: the shipped
    CSV); ``data_dir``: the datasets folder (default :func:`trainer.data.default_data_dir`)."""
    from trainer.builtin_directions import frey_frames
    from trainer.labels import load_frey_labels

    lab = labels if labels is not None else load_frey_labels(drop_ambiguous=True)
    frames = np.asarray(lab["frame"], dtype=np.int64)
    images = frey_frames(frames, data_dir)
    return fit_judge(images, lab["smile"], lab["pose"], frames // FREY_BLOCK, n_folds=n_folds)
