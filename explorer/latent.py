"""Points and paths in latent space, and how typical a point is under the prior N(0, I).

``J`` is the latent size. Everything takes and returns float32 numpy arrays.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch


def prior_samples(n: int, z_dim: int, seed: int = 0) -> np.ndarray:
    """``n`` draws z ~ N(0, I): (n, J). Seeded, so a page shows the same samples on reruns."""
    g = np.random.default_rng(seed)
    return g.standard_normal((n, z_dim)).astype(np.float32)


def interpolate(z0: np.ndarray, z1: np.ndarray, steps: int, mode: str = "linear") -> np.ndarray:
    """Points from ``z0`` to ``z1`` (both (J,)), endpoints included: (steps, J).

    ``linear`` is the straight line. ``slerp`` follows the great circle and interpolates the
    norm linearly; in high dimensions a straight line between two typical points passes near
    the origin, where ||z|| is atypically small, and slerp avoids that."""
    a = np.asarray(z0, dtype=np.float64)
    b = np.asarray(z1, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"interpolate: endpoints must both be (J,), got {a.shape} and {b.shape}")
    if steps < 2:
        raise ValueError(f"interpolate: need at least 2 steps, got {steps}")
    t = np.linspace(0.0, 1.0, steps)[:, None]
    if mode == "linear":
        return ((1 - t) * a + t * b).astype(np.float32)
    if mode != "slerp":
        raise ValueError(f"interpolate: mode must be 'linear' or 'slerp', got {mode!r}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-8 or nb < 1e-8:
        return ((1 - t) * a + t * b).astype(np.float32)  # no direction to follow from the origin
    ua, ub = a / na, b / nb
    omega = np.arccos(np.clip(ua @ ub, -1.0, 1.0))
    if omega < 1e-6:
        u = (1 - t) * ua + t * ub
    else:
        u = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
        u = u / np.linalg.norm(u, axis=1, keepdims=True)
    return (u * ((1 - t) * na + t * nb)).astype(np.float32)


def traversal(base: np.ndarray, dim: int, values: np.ndarray) -> np.ndarray:
    """Copies of ``base`` (J,) with dimension ``dim`` set to each of ``values`` (n,): (n, J)."""
    b = np.asarray(base, dtype=np.float32)
    if not 0 <= dim < b.shape[0]:
        raise ValueError(f"traversal: dim {dim} out of range for a {b.shape[0]}-D latent")
    out = np.repeat(b[None], len(values), axis=0)
    out[:, dim] = np.asarray(values, dtype=np.float32)
    return out


@dataclass(frozen=True)
class Typicality:
    """How a point z (J,) sits under the prior N(0, I).

    ``sq_norm`` = ||z||^2, which is chi-square with J degrees of freedom under the prior;
    ``percentile`` its CDF value in [0, 1] (0.5: a typical norm; near 1: farther out than
    almost every prior draw; near 0: closer to the centre than almost every prior draw).
    ``typical_range`` is the central interval of ||z||^2 that counts as typical, and
    ``abs_sd`` is |z_j| per dimension, in prior SDs."""

    sq_norm: float
    percentile: float
    abs_sd: np.ndarray
    verdict: str
    typical_range: tuple[float, float]


TYPICAL = "typical"
CLOSE = "atypically close to the mean"
UNUSUAL = "unusual"
FAR = "far outside the prior"


def chi2_cdf(x: float | np.ndarray, dof: int) -> np.ndarray:
    """CDF of the chi-square distribution: P(dof/2, x/2), the regularised lower incomplete
    gamma function (torch has it, so the app needs no scipy.stats import)."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    return torch.special.gammainc(torch.full_like(x, dof / 2.0), x.clamp(min=0) / 2.0).numpy()


def chi2_quantile(p: float | np.ndarray, dof: int) -> np.ndarray:
    """Inverse of :func:`chi2_cdf` for probabilities ``p`` in (0, 1), by bisection to 1e-9
    relative. torch has no inverse incomplete gamma, and scipy.special costs the app's
    start-up about 0.7 s to import for two numbers."""
    p = torch.as_tensor(np.asarray(p, dtype=np.float64))
    a = torch.full_like(p, dof / 2.0)
    lo, hi = torch.zeros_like(p), torch.full_like(p, dof + 40.0 * np.sqrt(dof) + 100.0)
    for _ in range(80):  # the bracket halves each step: 80 steps reach float64 resolution
        mid = (lo + hi) / 2
        below = torch.special.gammainc(a, mid / 2) < p
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return ((lo + hi) / 2).numpy()


@functools.lru_cache(maxsize=64)
def _chi2_bounds(dof: int, typical: float) -> tuple[float, float]:
    """The central ``typical`` interval of chi-square(dof), computed once per (dof, typical)
    (the bisection costs about 1 ms; a slider rerun asks for it every time)."""
    tail = (1.0 - typical) / 2.0
    lo, hi = chi2_quantile(np.array([tail, 1.0 - tail]), dof)
    return float(lo), float(hi)


def typicality(z: np.ndarray, typical: float = 0.95, extreme: float = 0.9999) -> Typicality:
    """Where ``z`` (J,) falls under the prior, judged on both tails of chi-square(J).

    ``verdict``: "typical" when ||z||^2 lies in the central ``typical`` mass (2.5th to 97.5th
    percentile by default); "atypically close to the mean" below it (in high J prior draws
    almost never come near the origin, though its density is highest there: the typical set
    is a thin shell at ||z||^2 ~ J); "unusual" above it; "far outside the prior" beyond the
    ``extreme`` quantile or with any coordinate beyond 4 SD, where the decoder has never
    been trained. For J <= 2 the density of ||z||^2 is highest at 0, so nothing counts as too
    close there: only the upper tail is judged and ``typical_range`` starts at 0."""
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    J = z.shape[0]
    r2 = float(z @ z)
    p = float(chi2_cdf(r2, J))
    tail = (1.0 - typical) / 2.0
    lo, hi = _chi2_bounds(J, typical)
    lower_tail = J > 2
    a = np.abs(z)
    if p > extreme or a.max(initial=0) > 4.0:
        verdict = FAR
    elif p > 1.0 - tail:
        verdict = UNUSUAL
    elif lower_tail and p < tail:
        verdict = CLOSE
    else:
        verdict = TYPICAL
    return Typicality(sq_norm=r2, percentile=p, abs_sd=a.astype(np.float32), verdict=verdict,
                      typical_range=(lo if lower_tail else 0.0, hi))


def active_dims(kl_per_dim: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Boolean (J,): latent dimensions whose mean KL to the prior exceeds ``threshold`` nats.

    A dimension with KL ~ 0 has q(z_j|x) = prior for every x: the decoder ignores it
    ("posterior collapse"), so moving its slider changes nothing."""
    return np.asarray(kl_per_dim, dtype=np.float64) > threshold


@dataclass(frozen=True)
class LatentBox:
    """Where a model's sliders and grids range, per latent dimension: ``lo``, ``hi`` (J,)
    multiples of ``step``, and ``centre`` (J,), the point a reset returns to. A VAE's is the
    prior's +-4 SD around the origin; an autoencoder has no prior, so its box is the range of
    its test codes (:func:`data_box`), which can lie anywhere and at any scale."""

    lo: np.ndarray
    hi: np.ndarray
    step: float
    centre: np.ndarray

    @property
    def format(self) -> str:
        """A printf format showing values to the step's precision (at least two decimals)."""
        return f"%.{max(2, int(np.ceil(-np.log10(self.step) - 1e-9)))}f"

    def snap(self, z) -> np.ndarray:
        """``z`` (J,) as sliders can show it: clipped to the box, rounded to the step (float64)."""
        z = np.clip(np.asarray(z, dtype=np.float64).reshape(-1), self.lo, self.hi)
        return np.round(np.round(z / self.step) * self.step, 9)


PRIOR_SPAN = 4.0  # a VAE's sliders span +-4 prior SDs
PRIOR_STEP = 0.05
_NICE_STEPS = tuple(round(m * 10.0**e, 9) for e in range(-6, 7) for m in (1, 2, 5))  # 1e-6 ... 5e6


def prior_box(z_dim: int) -> LatentBox:
    """A VAE's box: +-:data:`PRIOR_SPAN` prior SDs in every dimension, centred at the origin."""
    return LatentBox(np.full(z_dim, -PRIOR_SPAN), np.full(z_dim, PRIOR_SPAN), PRIOR_STEP, np.zeros(z_dim))


def data_box(codes: np.ndarray, coverage: float = 0.98, margin: float = 0.25, fine: int = 40,
             max_steps: int = 2000) -> LatentBox:
    """An autoencoder's box from its test codes (N, J): per dimension the central ``coverage`` of
    the codes, widened by ``margin`` of that width on each side (room to step a little beyond
    the data). The step is the largest round number at most 1/``fine`` of the narrowest
    dimension's interquartile range (a step moves the image a little, whatever the codes' scale),
    coarser only if a slider would have more than ``max_steps`` positions. ``centre`` is the
    codes' mean, snapped to the step."""
    c = np.asarray(codes, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] < 2 or not np.isfinite(c).all():
        raise ValueError(f"data_box: need finite (N >= 2, J) codes, got shape {c.shape}")
    tail = (1.0 - coverage) / 2.0
    qlo, q25, q75, qhi = np.quantile(c, [tail, 0.25, 0.75, 1.0 - tail], axis=0)
    width = np.maximum(qhi - qlo, 1e-3)
    lo, hi = qlo - margin * width, qhi + margin * width
    fine_step = next((s for s in reversed(_NICE_STEPS) if s <= float((q75 - q25).min()) / fine), _NICE_STEPS[0])
    cap_step = next((s for s in _NICE_STEPS if s >= float((hi - lo).max()) / max_steps), _NICE_STEPS[-1])
    step = max(fine_step, cap_step)
    # rounded to 9 decimals: multiples of the step without float noise (0.30000000000000004)
    lo, hi = np.round(np.floor(lo / step) * step, 9), np.round(np.ceil(hi / step) * step, 9)
    centre = np.clip(np.round(np.round(c.mean(0) / step) * step, 9), lo, hi)
    return LatentBox(lo, hi, step, centre)
