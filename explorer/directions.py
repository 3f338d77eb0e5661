"""Latent directions in the app: edit a point along them, sweep strips, and directions made
from a user's groups of test points or imported as vectors.

The math (fits, conditional projection, quality scores, the spread along a direction) lives
in :mod:`trainer.directions`; this module wraps it for interactive use. The user directions
file is :mod:`explorer.directions_file`, the user's groups before they are fitted
:mod:`explorer.direction_groups`, the projection histogram :func:`explorer.figures.projection_figure`.
Shapes: ``J`` latent size, ``N`` encoded test points (the checkpoint's ``test_mu``).

Amounts are in *test-set SDs along the direction* (``Direction.spread``): amount 1 moves a point
as far along the direction as one standard deviation of the encoded test set, whatever the
method or the latent size, so sliders of different directions mean comparable things.

Holding directions (InterFaceGAN's conditional manipulation): the step along a direction d is
replaced by its residual r after projecting out the held directions, rescaled so that the
projection onto d still changes by the requested amount (``r / (r . d)``). So an edit with holds
changes d's projection exactly as much as one without, and the held projections not at all.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from trainer.builtin_directions import compute_directions
from trainer.directions import (
    ARRAY_PREFIX,
    METHOD_LABELS,
    binary_quality,
    direction_spread,
    fit_direction,
    project_out,
    unit,
)

USER_METHODS = ("mean_difference", "classifier")
MIN_GROUP_FOR_QUALITY = 5  # per group, for a cross-validated score of a user direction
MIN_ALONG = 0.1  # a held step must keep at least this cosine with its direction


@dataclass(frozen=True, eq=False)
class Direction:
    """One direction as the app uses it.

    ``key``: unique id (``builtin:<name>.<method>``, ``user:<name>.<method>``,
    ``vector:<name>``); ``vector`` (J,) unit float64; ``spread`` SD of the test set along it;
    ``quality``: held-out scores (see :mod:`trainer.directions`), empty when there are none."""

    key: str
    name: str
    method: str
    label: str
    vector: np.ndarray
    spread: float
    kind: str = "binary"
    quality: dict = field(default_factory=dict)
    source: str = ""
    description: str = ""
    unit: str = ""

    @property
    def title(self) -> str:
        return f"{self.label} ({METHOD_LABELS.get(self.method, self.method)})"


def builtin_directions(arrays: Mapping, meta: Mapping, z_dim: int, mu: np.ndarray | None = None) -> list[Direction]:
    """The directions a checkpoint carries: ``arrays`` its tensors or numpy arrays
    (``direction.<name>.<method>`` (J,)), ``meta`` its meta dict. Wrong-sized or non-finite
    vectors are skipped. Order: as stored in ``meta["directions"]``, then any extra arrays."""
    found: dict[str, np.ndarray] = {}
    for k, v in arrays.items():
        if not k.startswith(ARRAY_PREFIX):
            continue
        a = np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float64).reshape(-1)
        if a.shape == (z_dim,) and np.isfinite(a).all() and np.linalg.norm(a) > 1e-12:
            found[k[len(ARRAY_PREFIX):]] = a
    info = _mapping(meta.get("directions"))
    order = [f"{n}.{m}" for n, ms in info.items() if isinstance(ms, Mapping) for m in ms]
    order += [k for k in found if k not in order]
    out = []
    for key in order:
        if key not in found:
            continue
        name, _, method = key.rpartition(".")
        e = _mapping(_mapping(info.get(name)).get(method))
        u = unit(found[key])
        spread = _number(e.get("spread"))
        out.append(Direction(
            key=f"builtin:{key}", name=name, method=method, label=str(e.get("label") or name), vector=u,
            spread=spread if spread and spread > 0 else direction_spread(mu, u), kind=str(e.get("kind") or "binary"),
            quality=dict(_mapping(e.get("quality"))), source=str(e.get("source") or ""),
            description=str(e.get("description") or ""), unit=str(e.get("unit") or ""),
        ))
    return out


def _mapping(x) -> Mapping:
    """``x`` if it is a mapping, else an empty one (a checkpoint's meta entries are read
    defensively: a wrong-typed field is ignored, not a crash)."""
    return x if isinstance(x, Mapping) else {}


def _number(x) -> float | None:
    """``x`` as a finite float, or None for anything else (strings, bools, NaN, None)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def computed_directions(ck) -> tuple[dict, dict]:
    """The built-in directions of a checkpoint that carries none, computed now from the
    dataset folder (:func:`trainer.builtin_directions.compute_directions`; needs the data), as the
    (arrays, meta) that :func:`builtin_directions` reads."""
    arrays, meta = compute_directions(ck)
    return {ARRAY_PREFIX + k: v for k, v in arrays.items()}, {"directions": meta}


def quality_text(d: Direction) -> str:
    """The headline held-out score of a direction, one line."""
    q = d.quality or {}

    def f(x):
        x = _number(x)
        return "n/a" if x is None else f"{x:.2f}"

    if not q:
        return "no held-out score"
    if "r2" in q:
        return f"held-out R² {f(q.get('r2'))}, Spearman {f(q.get('spearman'))} (n = {q.get('n')})"
    return (f"held-out accuracy {f(q.get('accuracy'))} (majority {f(q.get('majority'))}), "
            f"AUC {f(q.get('auc'))} (n = {q.get('n')})")


def quality_table(dirs: Sequence[Direction]) -> list[dict[str, str]]:
    """One row per direction for the quality table: direction, method, held-out score, source."""
    return [{"direction": d.label, "method": METHOD_LABELS.get(d.method, d.method), "held-out": quality_text(d),
             "source": d.source} for d in dirs]


# --------------------------------------------------------------------------- editing


def step_vector(d: Direction, hold: Sequence[Direction] = ()) -> np.ndarray:
    """The latent step (J,) for amount 1 along ``d``: ``spread * u`` without holds; with holds,
    the conditional residual rescaled so the projection onto ``u`` still grows by ``spread``.

    Raises ValueError when the held directions explain almost all of ``d`` (the residual
    keeps less than :data:`MIN_ALONG` of its cosine), since the step would then be huge."""
    u = d.vector
    others = [h.vector for h in hold if h.key != d.key]
    if not others:
        return d.spread * u
    try:
        r = project_out(u, np.stack(others))
    except ValueError:
        r = np.zeros_like(u)
    along = float(r @ u)
    if along < MIN_ALONG**2:  # r.u = |r|^2 for unit u, i.e. cos(angle(r, u))^2
        raise ValueError(f"{d.title}: the held directions explain almost all of it; release one of them")
    return d.spread * r / along


def apply_directions(base: np.ndarray, moves: Sequence[tuple[Direction, float]],
                     hold: Sequence[Direction] = ()) -> np.ndarray:
    """``base`` (J,) moved by each (direction, amount) of ``moves``, holding ``hold``: (J,) float32.

    Each move is made conditional on the held directions only (not on the other moves), and
    the moves add up."""
    z = np.asarray(base, dtype=np.float64).reshape(-1).copy()
    for d, amount in moves:
        if d.vector.shape != z.shape:
            raise ValueError(f"{d.title}: direction has {d.vector.shape[0]} dimensions, the point has {z.shape[0]}")
        z += float(amount) * step_vector(d, hold)
    return z.astype(np.float32)


def sweep(base: np.ndarray, moves: Sequence[tuple[Direction, float]], hold: Sequence[Direction] = (),
          steps: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Points along the edit: t in linspace(-1, 1, steps) times the full edit, so the middle
    frame (odd ``steps``) is the base, the last the result, the first the opposite edit.

    Returns (t (steps,), z (steps, J) float32)."""
    if steps < 2:
        raise ValueError(f"sweep: need at least 2 steps, got {steps}")
    b = np.asarray(base, dtype=np.float64).reshape(-1)
    delta = apply_directions(b, moves, hold).astype(np.float64) - b
    t = np.linspace(-1.0, 1.0, steps)
    return t, (b[None] + t[:, None] * delta[None]).astype(np.float32)


# --------------------------------------------------------------------------- user directions


def _check_rows(rows, n: int, what: str) -> np.ndarray:
    r = np.asarray(list(rows), dtype=np.int64).reshape(-1)
    if r.size == 0:
        raise ValueError(f"{what}: the group is empty")
    if r.min() < 0 or r.max() >= n:
        raise ValueError(f"{what}: rows must be in 0..{n - 1}, got {int(r.min())}..{int(r.max())}")
    return np.unique(r)


def group_digest(pos_rows, neg_rows) -> str:
    """A short hex key for a group's content (its rows, in order): what a cache of fitted
    user directions is keyed on, so a rerun hashes a few kB of rows, not the test set."""
    h = hashlib.sha1()
    for rows in (pos_rows, neg_rows):
        a = np.asarray(rows, dtype=np.int64).reshape(-1)
        h.update(len(a).to_bytes(8, "little"))
        h.update(a.tobytes())
    return h.hexdigest()


def user_directions(mu: np.ndarray, name: str, pos_rows, neg_rows,
                    methods: Sequence[str] = USER_METHODS) -> list[Direction]:
    """Directions from two groups of test rows: towards ``pos_rows`` (group A), away from
    ``neg_rows`` (group B). ``mu`` (N, J) the encoded test set. One Direction per method,
    fitted by :func:`trainer.directions.fit_direction`; the quality is a 5-fold held-out score
    when each group has at least :data:`MIN_GROUP_FOR_QUALITY` points. Cost: about 0.09 s of
    CPU for two groups of 5,000 points each in a 20-D latent (one BLAS thread)."""
    from threadpoolctl import threadpool_limits

    mu = np.asarray(mu, dtype=np.float64)
    pos = _check_rows(pos_rows, len(mu), f"{name}, group A")
    neg = _check_rows(neg_rows, len(mu), f"{name}, group B")
    both = np.intersect1d(pos, neg)
    if both.size:
        raise ValueError(f"{name}: {both.size} points are in both groups (e.g. row {int(both[0])}); "
                         "a point can be in one only")
    z = np.concatenate([mu[pos], mu[neg]])
    y = np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])
    unknown = [m for m in methods if m not in USER_METHODS]
    if unknown:
        raise ValueError(f"{name}: unknown method {unknown[0]!r}; expected one of {USER_METHODS}")
    # One BLAS thread, as in trainer.builtin_directions.compute_directions: the fits are small, and a
    # threaded BLAS on a busy 2-core server waits for its threads longer than it computes.
    scored = min(len(pos), len(neg)) >= MIN_GROUP_FOR_QUALITY
    out = []
    with threadpool_limits(1):
        for method in methods:
            u = fit_direction(method, z, y)
            quality = binary_quality(method, z, y, n_folds=min(5, len(pos), len(neg))) if scored else {}
            out.append(Direction(
                key=f"user:{name}.{method}", name=name, method=method, label=name, vector=u,
                spread=direction_spread(mu, u), kind="binary", quality=quality,
                source=f"your groups: {len(pos)} points (A) vs {len(neg)} (B)",
                description=f"Towards group A, away from group B of '{name}'.",
            ))
    return out


def vector_direction(mu: np.ndarray | None, name: str, vector) -> Direction:
    """A direction given as a plain vector (J,) (imported from a file)."""
    u = unit(vector)
    return Direction(key=f"vector:{name}", name=name, method="vector", label=name, vector=u,
                     spread=direction_spread(mu, u), kind="binary", source="imported vector",
                     description="A direction imported as a vector; no held-out score.")
