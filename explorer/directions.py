"""Latent directions in the app: edit a point along them, sweep strips, user-made directions,
their JSON file, and the projection histogram.

The math (mean difference, classifier normal, conditional projection, quality scores) lives in
:mod:`trainer.directions`; this module wraps it for interactive use. Shapes: ``J`` latent size,
``N`` encoded test points (the checkpoint's ``test_mu``).

Amounts are in *test-set SDs along the direction* (``Direction.spread``): amount 1 moves a point
as far along the direction as one standard deviation of the encoded test set, whatever the
method or the latent size, so sliders of different directions mean comparable things.

Holding directions (InterFaceGAN's conditional manipulation): the step along a direction d is
replaced by its residual r after projecting out the held directions, rescaled so that the
projection onto d still changes by the requested amount (``r / (r . d)``). So an edit with holds
changes d's projection exactly as much as one without, and the held projections not at all.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

# METHOD_LABELS and compute_directions are also the app's entry points (views import explorer only).
from trainer.directions import (
    ARRAY_PREFIX,
    METHOD_LABELS,
    binary_quality,
    classifier_normal,
    mean_difference,
    project_out,
    unit,
)

FILE_FORMAT = "vae-latent-explorer-directions"
FILE_VERSION = 1
USER_METHODS = ("mean_difference", "classifier")
MIN_GROUP_FOR_QUALITY = 5  # per group, for a cross-validated score of a user direction
MIN_ALONG = 0.1  # a held step must keep at least this cosine with its direction
NAME_RE = re.compile(r"^[\w][\w .+\-]{0,59}$")


class DirectionsFileError(ValueError):
    """A user directions file that cannot be used; the message names it and what is wrong."""


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


def _spread(mu: np.ndarray | None, u: np.ndarray) -> float:
    if mu is None or len(mu) < 2:
        return 1.0
    s = float(np.std(np.asarray(mu, dtype=np.float64) @ u))
    return s if s > 1e-8 else 1.0


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
    info = meta.get("directions") or {}
    order = [f"{n}.{m}" for n, ms in info.items() if isinstance(ms, Mapping) for m in ms]
    order += [k for k in found if k not in order]
    out = []
    for key in order:
        if key not in found:
            continue
        name, _, method = key.rpartition(".")
        e = (info.get(name) or {}).get(method) or {}
        u = unit(found[key])
        out.append(Direction(
            key=f"builtin:{key}", name=name, method=method, label=str(e.get("label") or name), vector=u,
            spread=float(e.get("spread") or _spread(mu, u)), kind=str(e.get("kind") or "binary"),
            quality=dict(e.get("quality") or {}), source=str(e.get("source") or ""),
            description=str(e.get("description") or ""), unit=str(e.get("unit") or ""),
        ))
    return out


def quality_text(d: Direction) -> str:
    """The headline held-out score of a direction, one line."""
    q = d.quality or {}

    def f(x):
        return "n/a" if x is None else f"{x:.2f}"

    if not q:
        return "no held-out score"
    if "r2" in q:
        return f"held-out R² {f(q.get('r2'))}, Spearman {f(q.get('spearman'))} (n = {q.get('n')})"
    return (f"held-out accuracy {f(q.get('accuracy'))} (majority {f(q.get('majority'))}), "
            f"AUC {f(q.get('auc'))} (n = {q.get('n')})")


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


def user_directions(mu: np.ndarray, name: str, pos_rows, neg_rows,
                    methods: Sequence[str] = USER_METHODS) -> list[Direction]:
    """Directions from two groups of test rows: towards ``pos_rows`` (group A), away from
    ``neg_rows`` (group B). ``mu`` (N, J) the encoded test set. One Direction per method; the
    quality is a 5-fold held-out score when each group has at least
    :data:`MIN_GROUP_FOR_QUALITY` points."""
    mu = np.asarray(mu, dtype=np.float64)
    pos = _check_rows(pos_rows, len(mu), f"{name}, group A")
    neg = _check_rows(neg_rows, len(mu), f"{name}, group B")
    both = np.intersect1d(pos, neg)
    if both.size:
        raise ValueError(f"{name}: {both.size} points are in both groups (e.g. row {int(both[0])}); a point can be in one only")
    z = np.concatenate([mu[pos], mu[neg]])
    y = np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])
    out = []
    for method in methods:
        if method == "mean_difference":
            v = mean_difference(mu[pos], mu[neg])
        elif method == "classifier":
            v = classifier_normal(z, y)
        else:
            raise ValueError(f"{name}: unknown method {method!r}; expected one of {USER_METHODS}")
        u = unit(v)
        quality = {}
        if min(len(pos), len(neg)) >= MIN_GROUP_FOR_QUALITY:
            quality = binary_quality(method, z, y, n_folds=min(5, len(pos), len(neg)))
        out.append(Direction(
            key=f"user:{name}.{method}", name=name, method=method, label=name, vector=u, spread=_spread(mu, u),
            kind="binary", quality=quality, source=f"your groups: {len(pos)} points (A) vs {len(neg)} (B)",
            description=f"Towards group A, away from group B of '{name}'.",
        ))
    return out


def vector_direction(mu: np.ndarray | None, name: str, vector) -> Direction:
    """A direction given as a plain vector (J,) (imported from a file)."""
    u = unit(vector)
    return Direction(key=f"vector:{name}", name=name, method="vector", label=name, vector=u,
                     spread=_spread(mu, u), kind="binary", source="imported vector",
                     description="A direction imported as a vector; no held-out score.")


# --------------------------------------------------------------------------- JSON file


def export_json(model: str, dataset: str, n_test: int, z_dim: int, groups: Mapping[str, Mapping],
                vectors: Mapping[str, Sequence[float]] | None = None) -> bytes:
    """The user's groups ({name: {"pos": rows, "neg": rows}}) and plain vectors
    ({name: (J,)}) as a JSON file (UTF-8 bytes). Rows are rows of the test set, which every
    model of the same dataset shares, so groups made on one model load into another."""
    doc = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "model": model,
        "dataset": dataset,
        "n_test": int(n_test),
        "z_dim": int(z_dim),
        "groups": {n: {"pos": sorted(int(r) for r in g["pos"]), "neg": sorted(int(r) for r in g["neg"])}
                   for n, g in groups.items()},
        "vectors": {n: [float(x) for x in v] for n, v in (vectors or {}).items()},
    }
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


def _check_name(name, where: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise DirectionsFileError(f"{where}: a name must be 1-60 letters, digits, spaces or _ . + -, got {name!r}")
    return name


def import_json(data: bytes | str, dataset: str, n_test: int, z_dim: int,
                filename: str = "directions file") -> tuple[dict[str, dict], dict[str, list[float]]]:
    """Parse and validate a file written by :func:`export_json` for a model of ``dataset``
    with ``n_test`` test points and a ``z_dim``-D latent.

    Returns (groups {name: {"pos": [rows], "neg": [rows]}}, vectors {name: [J floats]}).
    Raises :class:`DirectionsFileError` with a one-line message naming ``filename`` and what
    is wrong (not JSON, another format, another dataset, rows out of range, wrong vector size,
    a group in both A and B...). Vectors of another latent size are an error; groups are not
    tied to a latent size."""
    where = filename
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        doc = json.loads(text)
    except UnicodeDecodeError:
        raise DirectionsFileError(f"{where}: not a UTF-8 text file") from None
    except json.JSONDecodeError as e:
        raise DirectionsFileError(f"{where}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
        raise DirectionsFileError(f"{where}: not a directions file (expected \"format\": \"{FILE_FORMAT}\")")
    if doc.get("version") != FILE_VERSION:
        raise DirectionsFileError(f"{where}: version {doc.get('version')!r}, this app reads version {FILE_VERSION}")
    if doc.get("dataset") != dataset:
        raise DirectionsFileError(f"{where}: made for dataset {doc.get('dataset')!r}, this model is {dataset!r}")
    groups_in, vectors_in = doc.get("groups", {}), doc.get("vectors", {})
    if not isinstance(groups_in, dict) or not isinstance(vectors_in, dict):
        raise DirectionsFileError(f"{where}: \"groups\" and \"vectors\" must be JSON objects")
    groups: dict[str, dict] = {}
    for name, g in groups_in.items():
        _check_name(name, f"{where}, group {name!r}")
        if not isinstance(g, dict) or set(g) != {"pos", "neg"}:
            raise DirectionsFileError(f"{where}, group {name!r}: expected {{\"pos\": [rows], \"neg\": [rows]}}")
        rows = {}
        for side in ("pos", "neg"):
            r = g[side]
            if not isinstance(r, list) or not r or not all(isinstance(i, int) and not isinstance(i, bool) for i in r):
                raise DirectionsFileError(f"{where}, group {name!r}: \"{side}\" must be a non-empty list of integer rows")
            bad = [i for i in r if not 0 <= i < n_test]
            if bad:
                raise DirectionsFileError(f"{where}, group {name!r}: row {bad[0]} is outside this model's test set (0..{n_test - 1})")
            rows[side] = sorted(set(r))
        both = set(rows["pos"]) & set(rows["neg"])
        if both:
            raise DirectionsFileError(f"{where}, group {name!r}: row {min(both)} is in both pos and neg")
        groups[name] = rows
    vectors: dict[str, list[float]] = {}
    for name, v in vectors_in.items():
        _check_name(name, f"{where}, vector {name!r}")
        if not isinstance(v, list) or len(v) != z_dim:
            got = f"{len(v)} values" if isinstance(v, list) else type(v).__name__
            raise DirectionsFileError(f"{where}, vector {name!r}: expected {z_dim} numbers for this {z_dim}-D model, got {got}")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
            raise DirectionsFileError(f"{where}, vector {name!r}: every entry must be a finite number")
        if math.sqrt(sum(x * x for x in v)) < 1e-12:
            raise DirectionsFileError(f"{where}, vector {name!r}: has zero length")
        vectors[name] = [float(x) for x in v]
    return groups, vectors


# --------------------------------------------------------------------------- figure


def projection_figure(mu: np.ndarray, d: Direction, base: np.ndarray | None = None,
                      result: np.ndarray | None = None, groups: Mapping[str, np.ndarray] | None = None,
                      bins: int = 60) -> go.Figure:
    """Histogram of the test set ``mu`` (N, J) projected onto ``d``, in test-set SDs from the
    test set's mean along it, with vertical markers where ``base`` and ``result`` (J,) fall.
    ``groups``: optional name -> rows, overlaid as extra histograms (e.g. a user's A and B)."""
    mu = np.asarray(mu, dtype=np.float64)
    p_all = mu @ d.vector
    centre, s = float(p_all.mean()), d.spread or 1.0

    def pos(z):
        return (float(np.asarray(z, dtype=np.float64) @ d.vector) - centre) / s

    x = (p_all - centre) / s
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=x, nbinsx=bins, name="test set", marker_color="#9aa7b8", opacity=0.8))
    colours = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    for i, (name, rows) in enumerate((groups or {}).items()):
        r = np.asarray(rows, dtype=np.int64)
        if r.size:
            fig.add_trace(go.Histogram(x=x[r], nbinsx=bins, name=name, marker_color=colours[i % len(colours)],
                                       opacity=0.7))
    for z, name, colour, dash in ((base, "base", "#1f77b4", "dash"), (result, "result", "#d62728", "solid")):
        if z is not None:
            v = pos(z)
            fig.add_vline(x=v, line_color=colour, line_dash=dash, line_width=3)
            fig.add_trace(go.Scatter(x=[v], y=[0], mode="markers", name=f"{name} ({v:+.2f})",
                                     marker=dict(color=colour, size=12, symbol="triangle-up")))
    fig.update_layout(
        barmode="overlay", height=300, margin=dict(l=10, r=10, t=40, b=10),
        title=f"Test set along {d.title}", xaxis_title="position along the direction (test-set SDs from the mean)",
        yaxis_title="test points", legend=dict(orientation="h", y=-0.3),
    )
    return fig
