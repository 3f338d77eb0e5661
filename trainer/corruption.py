"""Corruption processes C(x~|x) for denoising autoencoders, and for measuring robustness.

The lecture notes' DAE objective is -E_x E_{x~ ~ C(x~|x)} log p(x' = x | z(x~)): the encoder sees a
corrupted input and the decoder must give back the clean one. The three classic corruptions
(Vincent et al. 2010, "Stacked Denoising Autoencoders", section 4.2), each with one ``level``:

- ``masking``: each pixel is set to 0 with probability ``level`` (masking noise).
- ``gaussian``: x + level * eps, eps ~ N(0, 1) per pixel, clipped back to [0, 1] (``level`` is
  the noise SD before clipping).
- ``salt_pepper``: each pixel, with probability ``level``, is set to 0 or 1 (a fair coin).

All take ``x`` (B, D) floats in [0, 1] (any shape works: the noise is per element) and return a
new tensor of the same shape, dtype and device, still in [0, 1]; ``x`` is not modified. Pass a
``torch.Generator`` for reproducible draws (same generator state, same corruption).

    from trainer.corruption import corrupt
    x_noisy = corrupt(x, "masking", 0.3, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import math

import torch

CORRUPTIONS = ("masking", "gaussian", "salt_pepper")
# The levels the Compare table uses by default (and sensible DAE training defaults): a
# third of the pixels hidden, noise of 0.3 grey levels, a fifth of the pixels flipped to 0/1.
DEFAULT_LEVELS = {"masking": 0.3, "gaussian": 0.3, "salt_pepper": 0.2}


def check_corruption(kind: str, level: float) -> float:
    """Validate a (kind, level) pair; returns the level as a float. Raises ValueError."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; expected one of {', '.join(CORRUPTIONS)}")
    try:
        level = float(level)
    except (TypeError, ValueError):
        raise ValueError(f"corruption level must be a number, got {level!r}") from None
    if not math.isfinite(level) or level < 0:
        raise ValueError(f"corruption level must be finite and >= 0, got {level}")
    if kind != "gaussian" and level > 1:
        raise ValueError(f"{kind} level is a probability, must be in [0, 1], got {level}")
    return level


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def masking(x: torch.Tensor, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Masking noise: each element set to 0 with probability ``level``. (B, D) -> (B, D)."""
    keep = _uniform(x, generator) >= check_corruption("masking", level)
    return x * keep


def gaussian(x: torch.Tensor, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Additive isotropic Gaussian noise of SD ``level``, clipped to [0, 1]. (B, D) -> (B, D)."""
    sd = check_corruption("gaussian", level)
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (x + sd * eps).clamp_(0.0, 1.0)


def salt_pepper(x: torch.Tensor, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Salt-and-pepper noise: with probability ``level`` an element becomes 0 or 1 (equally
    likely), otherwise it is kept. (B, D) -> (B, D)."""
    p = check_corruption("salt_pepper", level)
    # One uniform draw decides both: u < p/2 -> pepper (0), p/2 <= u < p -> salt (1).
    u = _uniform(x, generator)
    out = x.clone()
    out[u < p] = 0.0
    out[(u >= 0.5 * p) & (u < p)] = 1.0
    return out


_FUNCTIONS = {"masking": masking, "gaussian": gaussian, "salt_pepper": salt_pepper}


def corrupt(x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply corruption ``kind`` (one of :data:`CORRUPTIONS`) at ``level``. (B, D) -> (B, D)."""
    check_corruption(kind, level)
    return _FUNCTIONS[kind](x, level, generator)


__all__ = ["CORRUPTIONS", "DEFAULT_LEVELS", "check_corruption", "masking", "gaussian", "salt_pepper", "corrupt"]
