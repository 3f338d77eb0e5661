"""Estimators of log p(x) = log ∫ p(x|z) p(z) dz, and exact references to check them against.

The lecture's argument ("Naive Monte Carlo Gradient Estimator", "Comparison with Naive Monte
Carlo"), made measurable:

- naive Monte Carlo from the prior, eq. (1): log 1/L Σ p(x|z_l), z_l ~ N(0, I);
- importance sampling with the recognition model q(z|x) as proposal (Burda et al. 2015), the same
  estimator as :func:`trainer.model.iwae_log_likelihood`, here with its weights kept so that
  their running mean and effective sample size can be shown;
- the ELBO with L samples, E_q[log p(x,z) - log q(z|x)], and its closed-form-KL version, eq. (2);
- exact references: grid quadrature over a 2-D latent plane, and a linear-Gaussian model whose
  log p(x) = log N(x; b, W Wᵀ + s² I) is analytic.

Everything is batched over images and chunked over samples (no Python loop per sample), in
log space throughout (log-sum-exp), so L = 10^6 prior samples fit in a few tens of MB.
Shapes: ``B`` images, ``D`` pixels, ``J`` latent dimensions, ``n`` samples. A "model" is a
:class:`trainer.model.VAE` or anything with its ``encode``, ``decode_params`` and ``config.z_dim``
(such as :class:`LinearGaussian`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from trainer.model import LOG_2PI, VAE, VAEConfig, kl_divergence, log_likelihood

Progress = Callable[[float], None]
SMALL_BATCH = 4  # up to this many images, Gaussian pairs are computed directly, (n, B, D) at a time


# --- densities -----------------------------------------------------------------------------

def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last axis: (..., J) -> (...)."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def log_diag_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last axis; broadcasts: (..., J) -> (...)."""
    eps2 = (z - mu).pow(2) * torch.exp(-logvar)
    return -0.5 * (LOG_2PI + logvar + eps2).sum(-1)


def log_px_given_z(model: nn.Module, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(x_b | z_l) for every pair: ``x`` (B, D), ``z`` (n, J) -> (n, B).

    One decoder pass per z serves every image, and the pairs are matrix products (the same
    values as :func:`trainer.model.log_likelihood`, without an (n, B, D) temporary).
    Bernoulli with logits a: log p(x|z) = x·a - Σ_d softplus(a_d) (grey x included).
    Gaussian with mean m and precision r = exp(-logvar): -1/2 Σ_d (log 2π + logvar_d + r_d (x_d - m_d)²);
    for a few images ``log_likelihood`` broadcast, for many the square expanded into
    x²·r - 2 x·(m r) + Σ m² r, in float64 against cancellation."""
    a, lv = model.decode_params(z)
    if lv is None:
        return a @ x.T - F.softplus(a).sum(-1, keepdim=True)
    if x.shape[0] <= SMALL_BATCH:
        return log_likelihood(x, a[:, None, :], lv[:, None, :])
    m, lv, xd = a.double(), lv.double(), x.double()
    r = torch.exp(-lv)
    sq = r @ xd.pow(2).T - 2 * (m * r) @ xd.T + (m.pow(2) * r).sum(-1, keepdim=True)
    return (-0.5 * ((LOG_2PI + lv).sum(-1, keepdim=True) + sq)).to(x.dtype)


def _z_like(model: nn.Module) -> tuple[int, torch.dtype]:
    p = next(model.parameters())
    return model.config.z_dim, p.dtype


# --- draws ----------------------------------------------------------------------------------

class Draws(NamedTuple):
    """Samples of one proposal and their log densities. ``log_px_z``, ``log_pz``, ``log_q``
    are (n, B) (``log_pz`` is (n, 1) for prior draws, which every image shares); ``log_q`` is
    None when the proposal is the prior itself; ``z`` (n, J) or (n, B, J), kept on request."""

    log_px_z: torch.Tensor
    log_pz: torch.Tensor
    log_q: torch.Tensor | None = None
    z: torch.Tensor | None = None

    @property
    def log_w(self) -> torch.Tensor:
        """Log importance weights (n, B): log p(x|z) for the prior (eq. 1), else
        log p(x|z) + log p(z) - log q(z|x)."""
        if self.log_q is None:
            return self.log_px_z
        return self.log_px_z + self.log_pz - self.log_q

    @property
    def log_joint(self) -> torch.Tensor:
        """log p(x|z) + log p(z), (n, B): the unnormalised log posterior at each draw."""
        return self.log_px_z + self.log_pz


def _chunks(n: int, chunk: int) -> Iterator[int]:
    done = 0
    while done < n:
        m = min(chunk, n - done)
        yield m
        done += m


def _prior_chunks(model, x, n, chunk, generator, progress) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (z (m, J), log p(x|z) (m, B)) for ``n`` prior draws in chunks of at most ``chunk``."""
    J, dtype = _z_like(model)
    done = 0
    for m in _chunks(n, chunk):
        z = torch.randn((m, J), generator=generator, dtype=dtype)
        yield z, log_px_given_z(model, x, z)
        done += m
        if progress is not None:
            progress(done / n)


@torch.no_grad()
def prior_draws(model: nn.Module, x: torch.Tensor, n: int, chunk: int = 8192,
                generator: torch.Generator | None = None, keep_z: bool = False,
                progress: Progress | None = None) -> Draws:
    """``n`` draws z ~ N(0, I), shared by every row of ``x`` (B, D): they do not depend on x
    (that is the lecture's point), so one decoder pass serves all images and each row gets the
    ordinary naive estimator. Keeps (n, B) values: for B = 1 up to 10^6 samples is 4 MB."""
    parts = [(lp, log_standard_normal(z)[:, None], z if keep_z else z[:0])
             for z, lp in _prior_chunks(model, x, n, chunk, generator, progress)]
    lp, lz, z = (torch.cat(p) for p in zip(*parts))
    return Draws(lp, lz, None, z if keep_z else None)


@torch.no_grad()
def posterior_draws(model: nn.Module, x: torch.Tensor, k: int, chunk: int = 250,
                    generator: torch.Generator | None = None, keep_z: bool = False,
                    progress: Progress | None = None) -> Draws:
    """``k`` draws z ~ q(z|x) per row of ``x`` (B, D) by the reparameterisation trick (eq. 10),
    chunk by chunk exactly as :func:`trainer.model.iwae_log_likelihood` draws them, so with the
    same generator and chunk ``log_mean_exp(draws.log_w)`` is its value."""
    mu, logvar = model.encode(x)
    parts: list[tuple[torch.Tensor, ...]] = []
    done = 0
    for m in _chunks(k, chunk):
        z = model.reparameterize(mu, logvar, m, generator)  # (m, B, J)
        a, b = model.decode_params(z)
        parts.append((log_likelihood(x, a, b), log_standard_normal(z), log_diag_normal(z, mu, logvar),
                      z if keep_z else z[:0]))
        done += m
        if progress is not None:
            progress(done / k)
    lp, lz, lq, z = (torch.cat(p) for p in zip(*parts))
    return Draws(lp, lz, lq, z if keep_z else None)


# --- turning log weights into estimates -----------------------------------------------------

def log_mean_exp(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/n) Σ exp(log_w) along ``dim``, stably (log-sum-exp)."""
    return torch.logsumexp(log_w, dim) - math.log(log_w.shape[dim])


def running_log_mean_exp(log_w: torch.Tensor) -> torch.Tensor:
    """The estimate after the first 1, 2, ..., n samples: (n, ...) -> (n, ...)."""
    n = log_w.shape[0]
    counts = torch.arange(1, n + 1, dtype=torch.float64).log().to(log_w.dtype)
    return torch.logcumsumexp(log_w, 0) - counts.reshape(n, *([1] * (log_w.dim() - 1)))


def effective_sample_size(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Kish's effective sample size (Σ w)² / Σ w² of importance weights, from their logs:
    n when all weights are equal, 1 when one weight carries everything."""
    return torch.exp(2 * torch.logsumexp(log_w, dim) - torch.logsumexp(2 * log_w, dim))


def elbo_mc(draws: Draws) -> torch.Tensor:
    """The ELBO with L samples of q: mean of log p(x,z) - log q(z|x), (B,)."""
    return draws.log_w.mean(0)


def elbo_closed_kl(draws: Draws, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Eq. (2): (1/L) Σ log p(x|z_l) - KL(q(z|x) || p(z)) in closed form (Appendix B), (B,).
    The same expectation as :func:`elbo_mc` with less variance."""
    return draws.log_px_z.mean(0) - kl_divergence(mu, logvar).sum(-1)


@torch.no_grad()
def naive_mc_log_px(model: nn.Module, x: torch.Tensor, L: int | Sequence[int], chunk: int = 8192,
                    generator: torch.Generator | None = None, progress: Progress | None = None) -> torch.Tensor:
    """Eq. (1) for many images or huge L without keeping the weights: one stream of prior draws,
    read off after each count in ``L`` (increasing). ``x`` (B, D) -> (len(L), B), or (B,) for an int."""
    Ls = [int(L)] if isinstance(L, int) else [int(v) for v in L]
    if not Ls or Ls != sorted(Ls) or Ls[0] < 1:
        raise ValueError(f"naive_mc_log_px: L must be increasing positive counts, got {L}")
    acc = torch.full((x.shape[0],), float("-inf"), dtype=x.dtype)
    out, done, want = [], 0, list(Ls)
    while want:
        step = min(chunk, want[0] - done)
        _, lp = next(_prior_chunks(model, x, step, step, generator, None))
        acc = torch.logaddexp(acc, torch.logsumexp(lp, 0))
        done += step
        if done == want[0]:
            out.append(acc - math.log(done))
            want.pop(0)
        if progress is not None:
            progress(done / Ls[-1])
    res = torch.stack(out)
    return res[0] if isinstance(L, int) else res


# --- exact reference 1: quadrature over a 2-D latent plane ----------------------------------

def grid_axis(lo: float, hi: float, n: int) -> torch.Tensor:
    """``n`` equally spaced points from ``lo`` to ``hi`` inclusive (float64)."""
    return torch.linspace(lo, hi, n, dtype=torch.float64)


@torch.no_grad()
def grid_log_joint(model: nn.Module, x: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor,
                   chunk: int = 8192) -> torch.Tensor:
    """log p(x|z) + log p(z) on the grid z = (xs[i], ys[j]) of a 2-D latent: (len(ys), len(xs), B)."""
    _, dtype = _z_like(model)
    zz = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], -1).reshape(-1, 2).to(dtype)
    out = [log_px_given_z(model, x, z) + log_standard_normal(z)[:, None] for z in zz.split(chunk)]
    return torch.cat(out).reshape(len(ys), len(xs), x.shape[0])


@torch.no_grad()
def quadrature_log_px(model: nn.Module, x: torch.Tensor, n: int = 1000, extent: float = 7.0,
                      rows: int = 8, progress: Progress | None = None) -> torch.Tensor:
    """log p(x) for a 2-D latent by the trapezoid rule on an n x n grid over [-extent, extent]²
    (prior SDs): log h² + logsumexp of log p(x|z) + log p(z). For a smooth integrand that has
    decayed at the edges this converges faster than any power of h while h is below the
    posterior's width. ``x`` (B, D) -> (B,). Streams ``rows`` grid rows at a time."""
    if model.config.z_dim != 2:
        raise ValueError(f"quadrature_log_px: needs a 2-D latent, the model has {model.config.z_dim}")
    axis = grid_axis(-extent, extent, n)
    h = 2 * extent / (n - 1)
    acc = torch.full((x.shape[0],), float("-inf"), dtype=torch.float64)
    for i in range(0, n, rows):
        lj = grid_log_joint(model, x, axis, axis[i : i + rows], chunk=rows * n)
        acc = torch.logaddexp(acc, torch.logsumexp(lj.reshape(-1, x.shape[0]).double(), 0))
        if progress is not None:
            progress(min(1.0, (i + rows) / n))
    return (acc + 2 * math.log(h)).to(x.dtype)


class Window(NamedTuple):
    """A 2-D grid and log p(x|z) + log p(z) on it for one image: ``log_joint`` (len(ys), len(xs))."""

    xs: torch.Tensor
    ys: torch.Tensor
    log_joint: torch.Tensor

    def log_integral(self, step: int = 1) -> float:
        """Trapezoid-rule log ∫ over the window, on every ``step``-th grid point."""
        lj = self.log_joint[::step, ::step].double()
        hx = float(self.xs[step] - self.xs[0]) if len(self.xs) > step else 1.0
        hy = float(self.ys[step] - self.ys[0]) if len(self.ys) > step else 1.0
        return float(torch.logsumexp(lj.reshape(-1), 0)) + math.log(hx * hy)


class Quadrature(NamedTuple):
    """Adaptive quadrature of one image: ``log_px``, ``err`` (the change from halving the fine
    grid's resolution: an error estimate), the ``coarse`` window over the prior's range and the
    ``fine`` window around the posterior."""

    log_px: float
    err: float
    coarse: Window
    fine: Window


@torch.no_grad()
def adaptive_quadrature(model: nn.Module, x: torch.Tensor, extent: float = 7.0, coarse_n: int = 81,
                        fine_n: int = 121, drop: float = 25.0) -> Quadrature:
    """log p(x) for one image ``x`` (1, D) of a 2-D model in about 2% of the full grid's cost.

    A coarse grid over [-extent, extent]² finds where log p(x|z) + log p(z) is within ``drop``
    nats of its largest value; a fine grid covers that box (padded by 1.5 coarse cells) and
    integrates. Mass left outside the box is below e^-drop of the peak per coarse cell."""
    if model.config.z_dim != 2 or x.shape[0] != 1:
        raise ValueError("adaptive_quadrature: needs a 2-D latent and one image (1, D)")
    axis = grid_axis(-extent, extent, coarse_n)
    coarse = Window(axis, axis, grid_log_joint(model, x, axis, axis)[..., 0])
    keep = (coarse.log_joint >= coarse.log_joint.max() - drop).nonzero()
    pad = 1.5 * float(axis[1] - axis[0])
    (y0, x0), (y1, x1) = keep.min(0).values, keep.max(0).values
    xs = grid_axis(float(axis[x0]) - pad, float(axis[x1]) + pad, fine_n)
    ys = grid_axis(float(axis[y0]) - pad, float(axis[y1]) + pad, fine_n)
    fine = Window(xs, ys, grid_log_joint(model, x, xs, ys)[..., 0])
    lp = fine.log_integral()
    return Quadrature(lp, abs(lp - fine.log_integral(step=2)), coarse, fine)


def hpd_threshold(log_joint: torch.Tensor, mass: float = 0.99) -> float:
    """The level τ such that grid points with log p(x|z) + log p(z) >= τ hold ``mass`` of the
    posterior on a uniform grid: the highest-posterior-density region's boundary."""
    v = log_joint.reshape(-1).double().sort(descending=True).values
    cum = torch.softmax(v, 0).cumsum(0)
    i = int(torch.searchsorted(cum, torch.tensor([mass], dtype=cum.dtype)))
    return float(v[min(i, len(v) - 1)])


# --- exact reference 2: a linear-Gaussian model ---------------------------------------------

class LinearGaussian(nn.Module):
    """z ~ N(0, I), x|z ~ N(W z + b, s² I): log p(x) = log N(x; b, W Wᵀ + s² I) in closed form
    (:meth:`log_px`). Quacks like :class:`trainer.model.VAE` for the estimators above; its
    "encoder" returns the exact posterior's mean and the diagonal of its covariance, so q(z|x) is
    exact when W has orthogonal columns and a diagonal approximation otherwise."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor, s: float):
        super().__init__()
        D, J = W.shape
        self.config = VAEConfig(image_shape=(1, D), hidden=(), z_dim=J, likelihood="gaussian")
        self.W, self.b = nn.Parameter(W, requires_grad=False), nn.Parameter(b, requires_grad=False)
        self.s = float(s)
        # Exact posterior: precision P = I + Wᵀ W / s², mean P⁻¹ Wᵀ (x - b) / s².
        P = torch.eye(J, dtype=W.dtype) + W.T @ W / self.s**2
        self.post_cov = torch.linalg.inv(P)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = (x - self.b) @ self.W @ self.post_cov / self.s**2
        return mu, torch.log(torch.diagonal(self.post_cov)).expand_as(mu)

    reparameterize = staticmethod(VAE.reparameterize)

    def decode_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = z @ self.W.T + self.b
        return mean, torch.full_like(mean, 2 * math.log(self.s))

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """Analytic ELBO of the diagonal q(z|x) = N(m, diag v): E_q log p(x|z) - KL(q || p(z)), with
        E_q |x - b - W z|² = |x - b - W m|² + Σ_j v_j |W_j|². (B, D) -> (B,)."""
        mu, logvar = self.encode(x)
        D = self.W.shape[0]
        resid = (x - self.b - mu @ self.W.T).pow(2).sum(-1) + logvar.exp() @ self.W.pow(2).sum(0)
        rec = -0.5 * D * (LOG_2PI + 2 * math.log(self.s)) - resid / (2 * self.s**2)
        return rec - kl_divergence(mu, logvar).sum(-1)

    def log_px(self, x: torch.Tensor) -> torch.Tensor:
        """Analytic log p(x) = log N(x; b, W Wᵀ + s² I): (B, D) -> (B,)."""
        D = self.W.shape[0]
        cov = self.W @ self.W.T + self.s**2 * torch.eye(D, dtype=self.W.dtype)
        return torch.distributions.MultivariateNormal(self.b, covariance_matrix=cov).log_prob(x)
