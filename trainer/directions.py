"""Latent manipulation directions: the math, their quality scores, and their stored form.

A *direction* is a vector d (J,) in latent space; moving a point z to z + t * d should change
one attribute of the decoded image (more smile, more slant) and, ideally, nothing else.
Two ways to get one from labelled latent means ``z`` (N, J):

- :func:`mean_difference`: the mean of the positive group minus the mean of the negative group,
  z_pos - z_neg (the lecture's recipe). For a continuous attribute the groups are its top and
  bottom quartiles.
- :func:`classifier_normal`: the normal of a logistic-regression boundary between the groups
  (InterFaceGAN, Shen et al. 2020), or for a continuous attribute :func:`regression_direction`,
  the gradient of a linear regression of the attribute on z.

:func:`project_out` makes a *conditional* direction (InterFaceGAN's conditional manipulation):
it removes from d its components along directions to hold, so moving along the result leaves
the projections onto the held directions unchanged.

Quality (:func:`binary_quality`, :func:`continuous_quality`): k-fold cross-validation. Each
fold fits the direction on the training part, projects the held-out part onto it, and predicts
the attribute from that one number (a 1-D logistic regression or a 1-D linear fit, itself fitted
on the training part's projections). Reported: held-out accuracy, balanced accuracy and ROC AUC
(binary), or held-out R^2 and Spearman correlation (continuous).

Stored form (:func:`store_directions`; :func:`trainer.builtin_directions.build_directions`): unit vectors, tensors
``arrays.direction.<name>.<method>`` (J,) float32 in the checkpoint, and
``meta["directions"][name][method]`` = {label, description, kind, unit, source, n_pos, n_neg,
spread, quality}. ``spread`` is the standard deviation of the checkpoint's encoded test set
(``test_mu``) along the unit direction, so "amount 1" can mean one test-set SD along it.

The built-in MNIST and Frey Face directions are computed and stored by
:mod:`trainer.builtin_directions`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# scikit-learn and scipy.stats are imported inside the functions that fit or score: the app
# imports this module at start-up and only needs them when a direction is (re)computed.

METHODS = ("mean_difference", "classifier", "regression")
METHOD_LABELS = {
    "mean_difference": "mean difference",
    "classifier": "classifier normal",
    "regression": "regression",
}
ARRAY_PREFIX = "direction."


# --------------------------------------------------------------------------- the math


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` (J,) scaled to length 1 (float64); raises ValueError for a zero vector."""
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n < 1e-12:
        raise ValueError("direction has zero length (the two groups have the same mean?)")
    return v / n


def _check_z(z, name: str) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0:
        raise ValueError(f"{name}: expected latent points of shape (N, J) with N >= 1, got {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"{name}: latent points contain NaN or infinite values")
    return z


def mean_difference(z_pos: np.ndarray, z_neg: np.ndarray) -> np.ndarray:
    """z_pos - z_neg: mean of ``z_pos`` (P, J) minus mean of ``z_neg`` (Q, J) -> (J,) float64.

    Not normalised: adding the result to a point of the negative group moves it, on average,
    to the positive group's mean."""
    zp, zn = _check_z(z_pos, "mean_difference z_pos"), _check_z(z_neg, "mean_difference z_neg")
    if zp.shape[1] != zn.shape[1]:
        raise ValueError(f"mean_difference: groups have different latent sizes {zp.shape[1]} and {zn.shape[1]}")
    return zp.mean(0) - zn.mean(0)


def _centre_and_scale(z: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre each dimension, divide all by one common scale (the RMS spread).

    One common scale, not one per dimension: the latent space is already close to isotropic
    (the prior is N(0, I)), and a per-dimension standardisation would inflate the collapsed
    dimensions (spread ~0.01, ignored by the decoder) a hundredfold, so their noise would
    dominate the normal once mapped back to z coordinates."""
    zc = z - z.mean(0)
    s = float(np.sqrt((zc**2).mean()))
    return zc / (s if s > 1e-12 else 1.0), s


def classifier_normal(z: np.ndarray, y: np.ndarray, C: float = 1.0) -> np.ndarray:
    """Unit normal (J,) of a logistic-regression boundary, pointing towards ``y == 1``.

    z: (N, J) latent means; y: (N,) binary labels (bool or 0/1), both classes present.
    Classes are weighted to balance (smiles are a quarter of Frey Face), and z is centred and
    scaled by one common factor (see :func:`_centre_and_scale`), so the normal in the scaled
    space is also the normal in z space."""
    from sklearn.linear_model import LogisticRegression
    z = _check_z(z, "classifier_normal z")
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"classifier_normal: {z.shape[0]} points but {y.shape[0]} labels")
    yb = y.astype(bool)
    if yb.all() or not yb.any():
        raise ValueError("classifier_normal: need both classes among the labels")
    zs, _ = _centre_and_scale(z)
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
    clf.fit(zs, yb)
    return unit(clf.coef_[0])


def regression_direction(z: np.ndarray, values: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Unit gradient (J,) of the least-squares fit ``values ~ a + z @ b``, pointing towards
    larger values. z: (N, J); values: (N,) finite floats. A tiny ridge (in the commonly scaled
    space) keeps collinear or collapsed dimensions from blowing up the solution."""
    z = _check_z(z, "regression_direction z")
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.shape[0] != z.shape[0]:
        raise ValueError(f"regression_direction: {z.shape[0]} points but {v.shape[0]} values")
    if not np.isfinite(v).all():
        raise ValueError("regression_direction: values contain NaN or infinite entries")
    zs, _ = _centre_and_scale(z)
    vc = v - v.mean()
    J = zs.shape[1]
    b = np.linalg.solve(zs.T @ zs + ridge * len(v) * np.eye(J), zs.T @ vc)
    return unit(b)


def project_out(direction: np.ndarray, hold_directions) -> np.ndarray:
    """InterFaceGAN's conditional direction: ``direction`` (J,) minus its components along the
    span of ``hold_directions`` (a sequence of (J,) vectors or an (H, J) array).

    The held directions are orthonormalised first (Gram-Schmidt; ones already in the span of
    the previous ones are skipped), so the result is orthogonal to every held direction even
    when those are correlated with each other. Returns the residual (J,) float64, not
    normalised. Raises ValueError when nothing is left (the direction lies in the held span)."""
    d = np.asarray(direction, dtype=np.float64).reshape(-1)
    holds = np.asarray(hold_directions, dtype=np.float64)
    if holds.size == 0:
        return d.copy()
    holds = holds.reshape(-1, d.shape[0]) if holds.ndim == 1 else holds
    if holds.shape[1] != d.shape[0]:
        raise ValueError(f"project_out: held directions have size {holds.shape[1]}, direction has {d.shape[0]}")
    basis: list[np.ndarray] = []
    for h in holds:
        r = h.copy()
        for _ in range(2):  # twice: classical Gram-Schmidt loses orthogonality in float
            for b in basis:
                r -= (r @ b) * b
        n = np.linalg.norm(r)
        if n > 1e-8 * max(1.0, np.linalg.norm(h)):
            basis.append(r / n)
    r = d.copy()
    for _ in range(2):
        for b in basis:
            r -= (r @ b) * b
    if np.linalg.norm(r) < 1e-8 * max(1.0, np.linalg.norm(d)):
        raise ValueError("project_out: the direction lies in the span of the held directions; "
                         "nothing is left to move along")
    return r


# --------------------------------------------------------------------------- quality


def _fit(method: str, z: np.ndarray, target: np.ndarray, kind: str) -> np.ndarray:
    """Unit direction from one method. Binary target: bool; continuous: float."""
    if method == "mean_difference":
        if kind == "binary":
            return unit(mean_difference(z[target], z[~target]))
        lo, hi = np.quantile(target, [0.25, 0.75])
        return unit(mean_difference(z[target >= hi], z[target <= lo]))
    if method == "classifier":
        if kind != "binary":
            raise ValueError("classifier: needs a binary attribute")
        return classifier_normal(z, target)
    if method == "regression":
        return regression_direction(z, target.astype(np.float64))
    raise ValueError(f"unknown direction method {method!r}; expected one of {METHODS}")


def fit_direction(method: str, z: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Unit direction (J,) by ``method`` from latent means ``z`` (N, J) and ``target`` (N,):
    bool for a binary attribute (mean_difference, classifier, regression onto 0/1), float for a
    continuous one (mean_difference of top vs bottom quartile, regression)."""
    t = np.asarray(target)
    kind = "binary" if t.dtype == np.bool_ else "continuous"
    return _fit(method, _check_z(z, "fit_direction z"), t, kind)


def _folds(n: int, groups: np.ndarray | None, n_folds: int, seed: int):
    from sklearn.model_selection import GroupKFold, KFold
    if groups is not None:
        k = min(n_folds, len(np.unique(groups)))
        return list(GroupKFold(n_splits=k).split(np.zeros(n), groups=groups))
    return list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(n)))


def binary_quality(method: str, z: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None,
                   n_folds: int = 5, seed: int = 0) -> dict:
    """Held-out scores of a binary direction: z (N, J), y (N,) bool, groups (N,) or None.

    Each fold: fit the direction on the rest, project; a 1-D logistic regression on the
    training projections gives the threshold. Returns {accuracy, balanced_accuracy (pooled
    out-of-fold predictions), auc (mean over folds that hold both classes), majority (accuracy
    of always guessing the commoner class), folds, n}. Folds whose training part lacks a
    class are skipped."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    z = _check_z(z, "binary_quality z")
    y = np.asarray(y).astype(bool)
    pred = np.full(len(y), -1, dtype=np.int8)
    aucs = []
    used = 0
    for tr, te in _folds(len(y), groups, n_folds, seed):
        if y[tr].all() or not y[tr].any():
            continue
        d = _fit(method, z[tr], y[tr], "binary")
        p_tr, p_te = z[tr] @ d, z[te] @ d
        one_d = LogisticRegression(max_iter=1000).fit(p_tr[:, None], y[tr])
        pred[te] = one_d.predict(p_te[:, None])
        if y[te].any() and not y[te].all():
            aucs.append(roc_auc_score(y[te], p_te))
        used += 1
    done = pred >= 0
    yt, yp = y[done], pred[done].astype(bool)
    if yt.size == 0:
        return {"accuracy": None, "balanced_accuracy": None, "auc": None, "majority": None, "folds": 0, "n": 0}
    recalls = [float((yp[yt == c] == c).mean()) for c in (False, True) if (yt == c).any()]
    return {
        "accuracy": float((yp == yt).mean()),
        "balanced_accuracy": float(np.mean(recalls)),
        "auc": float(np.mean(aucs)) if aucs else None,
        "majority": float(max(yt.mean(), 1 - yt.mean())),
        "folds": used,
        "n": int(yt.size),
    }


def continuous_quality(method: str, z: np.ndarray, values: np.ndarray, groups: np.ndarray | None = None,
                       n_folds: int = 5, seed: int = 0) -> dict:
    """Held-out scores of a continuous direction: z (N, J), values (N,) finite floats.

    Each fold: fit the direction on the rest, project; a 1-D linear fit of the value on the
    training projections predicts the held-out values. Returns {r2 (pooled out-of-fold
    predictions), spearman (mean over folds of the rank correlation between projection and
    value), folds, n}."""
    from scipy.stats import spearmanr
    z = _check_z(z, "continuous_quality z")
    v = np.asarray(values, dtype=np.float64)
    pred = np.full(len(v), np.nan)
    rhos = []
    for tr, te in _folds(len(v), groups, n_folds, seed):
        d = _fit(method, z[tr], v[tr], "continuous")
        p_tr, p_te = z[tr] @ d, z[te] @ d
        slope, icpt = np.polyfit(p_tr, v[tr], 1)
        pred[te] = slope * p_te + icpt
        rhos.append(float(spearmanr(p_te, v[te]).statistic))
    done = np.isfinite(pred)
    resid = ((v[done] - pred[done]) ** 2).sum()
    total = ((v[done] - v[done].mean()) ** 2).sum()
    return {
        "r2": float(1 - resid / total) if total > 0 else None,
        "spearman": float(np.mean(rhos)) if rhos else None,
        "folds": len(rhos),
        "n": int(done.sum()),
    }


def direction_spread(z: np.ndarray | None, d: np.ndarray) -> float:
    """Standard deviation of the points ``z`` (N, J) along the unit direction ``d`` (J,): the
    "test-set SD" in which the app measures amounts. 1.0 when there are fewer than 2 points or
    the spread is below 1e-8 (the points do not vary along ``d``), so an amount is always a
    finite step."""
    if z is None or len(z) < 2:
        return 1.0
    s = float(np.std(np.asarray(z, dtype=np.float64) @ np.asarray(d, dtype=np.float64)))
    return s if s > 1e-8 else 1.0


def direction_entry(method: str, z: np.ndarray, target: np.ndarray, z_test: np.ndarray, *,
                    label: str, description: str, unit_name: str, source: str,
                    groups: np.ndarray | None = None, n_folds: int = 5, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Fit one direction on all of (z, target) and score it by cross-validation.

    z (N, J) latent means of the labelled examples, target (N,) bool or float, z_test (M, J)
    the checkpoint's encoded test set (for ``spread``). Returns (unit vector (J,) float32,
    meta entry dict as stored under ``meta["directions"][name][method]``)."""
    z = _check_z(z, f"{label} z")
    t = np.asarray(target)
    kind = "binary" if t.dtype == np.bool_ else "continuous"
    d = _fit(method, z, t, kind)
    if kind == "binary":
        quality = binary_quality(method, z, t, groups, n_folds, seed)
        n_pos, n_neg = int(t.sum()), int((~t).sum())
    else:
        quality = continuous_quality(method, z, t, groups, n_folds, seed)
        if method == "mean_difference":
            lo, hi = np.quantile(t, [0.25, 0.75])
            n_pos, n_neg = int((t >= hi).sum()), int((t <= lo).sum())
        else:
            n_pos, n_neg = int(len(t)), 0
    spread = direction_spread(z_test, d)
    entry = {
        "label": label,
        "description": description,
        "kind": kind,
        "unit": unit_name,
        "source": source,
        "n_pos": n_pos,
        "n_neg": n_neg,
        "spread": spread,
        "cv": "grouped by 100-frame block" if groups is not None else "random folds",
        "quality": quality,
    }
    return d.astype(np.float32), entry


# --------------------------------------------------------------------------- stored form


def stored_directions(ck) -> tuple[dict[str, np.ndarray], dict]:
    """What a checkpoint already carries: (arrays ``"<name>.<method>"`` -> (J,), meta dict)."""
    arrays = {k[len(ARRAY_PREFIX):]: v.numpy() for k, v in ck.arrays.items() if k.startswith(ARRAY_PREFIX)}
    return arrays, dict(ck.meta.get("directions", {}))


def store_directions(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Rewrite the checkpoint at ``path`` atomically with these directions (replacing any it
    had); model weights, other arrays, other meta and any resumable state stay as they were."""
    import torch

    from trainer.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(path, with_state=True)
    J = ck.config.z_dim
    kept = {k: v for k, v in ck.arrays.items() if not k.startswith(ARRAY_PREFIX)}
    for key, v in arrays.items():
        v = np.asarray(v, dtype=np.float32)
        if v.shape != (J,) or not np.isfinite(v).all():
            raise ValueError(f"{path}: direction {key!r} must be {J} finite floats, got shape {v.shape}")
        kept[ARRAY_PREFIX + key] = torch.from_numpy(v.copy())
    new_meta = dict(ck.meta, directions=meta)
    return save_checkpoint(path, ck.model, new_meta, kept, ck.state)
