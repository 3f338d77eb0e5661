"""Latent grids to decode into manifold pictures (the paper's Fig. 4 and planes in higher D).

A grid is an array of latent points (R, C, J): row 0 is the top of the picture and has the
largest value along the vertical axis (so "up" in the picture is "up" in latent space);
columns go left to right along the horizontal axis.
"""

from __future__ import annotations

import numpy as np
import torch

PICTURE_PX = 720  # the longer side of a grid picture on the page, in CSS pixels


def default_grid_size(image_shape: tuple[int, int], picture_px: int = PICTURE_PX, min_px: int = 50,
                      smallest: int = 5, largest: int = 15) -> int:
    """The default images per side for a grid of (H, W) images: the largest odd n (an odd grid
    has the origin in its middle) whose picture, ``picture_px`` on its longer side, still shows
    every image at least ``min_px`` across its narrower side. 28x28 digits: 13; 28x20 Frey
    faces: 9 (15x15 faces are 39 px wide, too small to read an expression)."""
    h, w = image_shape
    scale = min_px / min(h, w)  # screen pixels per image pixel
    n = int((picture_px / scale + 1) // (max(h, w) + 1))  # images plus their 1-px gaps
    n = n if n % 2 else n - 1
    return int(min(largest, max(smallest, n)))


def gaussian_quantiles(n: int, coverage: float = 0.9) -> np.ndarray:
    """``n`` evenly spaced probabilities over the central ``coverage`` of (0, 1), mapped through
    the inverse Gaussian CDF: (n,) increasing latent coordinates in prior SDs.

    coverage 0.9 gives probabilities 0.05..0.95, i.e. +-1.64 SD, with points denser near the
    origin where the prior puts its mass (the paper's Fig. 4)."""
    if n < 1:
        raise ValueError(f"grid size must be >= 1, got {n}")
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    lo = (1.0 - coverage) / 2.0
    p = np.linspace(lo, 1.0 - lo, n) if n > 1 else np.array([0.5])
    return torch.special.ndtri(torch.as_tensor(p, dtype=torch.float64)).numpy().astype(np.float32)


def fig4_grid(n: int, coverage: float = 0.9) -> np.ndarray:
    """The paper's Fig. 4 grid for a 2-D latent: (n, n, 2), z = (Phi^-1(u), Phi^-1(v)) for a
    regular grid (u, v) on the unit square; z_1 grows to the right, z_2 grows upwards."""
    q = gaussian_quantiles(n, coverage)
    zx, zy = np.meshgrid(q, q[::-1])
    return np.stack([zx, zy], axis=-1).astype(np.float32)


def plane_grid(base: np.ndarray, u: np.ndarray, v: np.ndarray, n: int, span: float = 3.0) -> np.ndarray:
    """Points ``base + a*u + b*v`` for a, b on an n x n regular grid in [-span, span]:
    (n, n, J). ``base``, ``u`` (horizontal, growing right) and ``v`` (vertical, growing up)
    are (J,); with unit ``u``, ``v`` the span is in prior SDs."""
    base = np.asarray(base, dtype=np.float32).reshape(-1)
    u = np.asarray(u, dtype=np.float32).reshape(-1)
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    if not base.shape == u.shape == v.shape:
        raise ValueError(f"plane_grid: base, u, v must all be (J,), got {base.shape}, {u.shape}, {v.shape}")
    if n < 1 or span <= 0:
        raise ValueError(f"plane_grid: need n >= 1 and span > 0, got n={n}, span={span}")
    t = np.linspace(-span, span, n, dtype=np.float32) if n > 1 else np.zeros(1, np.float32)
    a, b = np.meshgrid(t, t[::-1])
    return (base + a[..., None] * u + b[..., None] * v).astype(np.float32)


def axis_directions(z_dim: int, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along latent dimensions ``i`` (horizontal) and ``j`` (vertical): two (J,)."""
    if not (0 <= i < z_dim and 0 <= j < z_dim) or i == j:
        raise ValueError(f"need two different dimensions in 0..{z_dim - 1}, got {i} and {j}")
    u = np.zeros(z_dim, np.float32)
    v = np.zeros(z_dim, np.float32)
    u[i] = 1.0
    v[j] = 1.0
    return u, v


def principal_directions(mu: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` principal directions of encoded means ``mu`` (N, J): unit rows (k, J) and
    the standard deviation of the data along each (k,). Signs are fixed so the largest
    component of each direction is positive (stable pictures across calls)."""
    m = np.asarray(mu, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 2 or m.shape[1] < k:
        raise ValueError(f"principal_directions: need (N >= 2, J >= {k}) means, got shape {m.shape}")
    c = m - m.mean(0)
    _, s, vt = np.linalg.svd(c, full_matrices=False)
    d = vt[:k]
    sign = np.sign(d[np.arange(k), np.abs(d).argmax(1)])
    d = d * sign[:, None]
    return d.astype(np.float32), (s[:k] / np.sqrt(m.shape[0] - 1)).astype(np.float32)


def code_range(codes: np.ndarray, coverage: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Per dimension, the central ``coverage`` of test codes (N, J): ``lo``, ``hi`` (J,). An
    autoencoder's grid spans this instead of the prior's quantiles (it has no prior)."""
    c = np.asarray(codes, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] < 2:
        raise ValueError(f"code_range: need (N >= 2, J) codes, got shape {c.shape}")
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    tail = (1.0 - coverage) / 2.0
    lo, hi = np.quantile(c, [tail, 1.0 - tail], axis=0)
    return lo.astype(np.float32), hi.astype(np.float32)


def range_grid(lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """A regular n x n grid over [lo[0], hi[0]] x [lo[1], hi[1]] of a 2-D latent: (n, n, 2),
    the first coordinate growing to the right, the second upwards (as :func:`fig4_grid`, with
    evenly spaced values over the data's range in place of the prior's quantiles)."""
    if n < 1:
        raise ValueError(f"grid size must be >= 1, got {n}")
    xs, ys = (np.linspace(a, b, n) if n > 1 else np.array([(a + b) / 2]) for a, b in zip(lo[:2], hi[:2]))
    zx, zy = np.meshgrid(xs, ys[::-1])
    return np.stack([zx, zy], axis=-1).astype(np.float32)
