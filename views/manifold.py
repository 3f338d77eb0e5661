"""Manifold grid: decode a grid of latent points into one picture (the paper's Fig. 4 for a
2-D latent; a plane through a chosen point along two dimensions or principal directions).
An autoencoder has no prior to take quantiles of: its grids span where its test codes lie."""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from explorer import grids, images, models
from views.context import ViewContext
from views.display import show
from views.points import pick_point

DATA_GRID = "Grid over the test codes' range"


def render(ctx: ViewContext) -> None:
    J, name = ctx.z_dim, ctx.name
    k = f"grid.{name}"
    mu = ctx.array("test_mu")
    first = ("Fig. 4: inverse Gaussian CDF" if ctx.has_prior else DATA_GRID if mu is not None else None)
    modes = ([first] if J == 2 and first else []) + ["Plane through a point"]
    c1, c2 = st.columns([1, 2])
    with c1:
        mode = st.radio("Grid", modes, key=f"{k}.mode", persist_state="session")
        n = st.slider("Grid size (images per side)", 3, 30, grids.default_grid_size(ctx.image_shape),
                      key=f"{k}.n", persist_state="session")
        if mode.startswith("Fig. 4"):
            z, axes = _fig4(k, n)
        elif mode == DATA_GRID:
            z, axes = _data_grid(k, n, mu)
        else:
            z, axes = _plane(ctx, k, n, mu)
        if z is None:
            return
    with c2:
        imgs = ctx.decode(z)  # (n, n, H, W)
        pic = images.tile(imgs, pad=1)
        what = "means" if ctx.has_prior else "images"
        show(pic, f"{n}x{n} decoded {what}: {axes}", target=grids.PICTURE_PX, max_factor=6)
        # Encoded only when clicked: an optimised 2x PNG costs tens of ms, on every rerun otherwise.
        st.download_button("Download PNG", functools.partial(images.png_bytes, pic, factor=2),
                           file_name=f"{name}-grid.png", mime="image/png", key=f"{k}.png", on_click="ignore")


def _fig4(k: str, n: int) -> tuple[np.ndarray, str]:
    """The paper's Fig. 4: an n x n grid of prior quantiles (2-D VAE)."""
    cov = st.slider("Span (central probability mass covered)", 0.50, 0.999, 0.90, step=0.005,
                    key=f"{k}.cov", persist_state="session", format="%.3f")
    q = float(grids.gaussian_quantiles(2, cov)[1])
    return grids.fig4_grid(n, cov), (f"z0 left to right, z1 bottom to top, each over +-{q:.2f} SD "
                                     f"(quantiles {(1 - cov) / 2:.3f}..{(1 + cov) / 2:.3f})")


def _data_grid(k: str, n: int, mu: np.ndarray) -> tuple[np.ndarray, str]:
    """A 2-D autoencoder's counterpart: an even grid over the central share of its test codes."""
    cov = st.slider("Span (central share of the test codes covered, per dimension)", 0.50, 0.999, 0.98,
                    step=0.005, key=f"{k}.dcov", persist_state="session", format="%.3f")
    lo, hi = grids.code_range(mu, cov)
    return grids.range_grid(lo, hi, n), (
        f"z0 left to right from {lo[0]:.2f} to {hi[0]:.2f}, z1 bottom to top from {lo[1]:.2f} to "
        f"{hi[1]:.2f} (evenly spaced over the central {100 * cov:.1f}% of the test codes: this "
        "autoencoder has no prior whose quantiles Fig. 4 would use)")


def _plane(ctx: ViewContext, k: str, n: int, mu: np.ndarray | None) -> tuple[np.ndarray | None, str]:
    """A plane through a chosen point along two latent dimensions or two principal directions;
    (None, "") when the user picked the same dimension twice."""
    J = ctx.z_dim
    base, base_desc = pick_point(ctx, "Through", key=f"{k}.base")
    dir_opts = ["Two latent dimensions"]
    if mu is not None and J >= 2:
        dir_opts.append("Two principal directions of the encoded test set")
    how = st.radio("Along", dir_opts, key=f"{k}.dirs", persist_state="session")
    if how.startswith("Two latent"):
        kl = models.kl_per_dim(ctx.ck)
        # the most used dimensions first: by KL (a VAE), else by how far the test codes spread
        used = kl if kl is not None else (mu.std(0) if mu is not None else None)
        order = list(np.argsort(-used)) if used is not None else list(range(J))
        d0 = st.selectbox("Horizontal dimension", range(J), index=int(order[0]), key=f"{k}.i",
                          format_func=lambda j: f"z{j}", persist_state="session")
        d1_default = int(order[1]) if int(order[1]) != d0 else int(order[0])
        d1 = st.selectbox("Vertical dimension", range(J), index=d1_default, key=f"{k}.j",
                          format_func=lambda j: f"z{j}", persist_state="session")
        if d0 == d1:
            st.error("Pick two different dimensions.")
            return None, ""
        u, v = grids.axis_directions(J, d0, d1)
        sd = (mu[:, d0].std(), mu[:, d1].std()) if mu is not None else (1.0, 1.0)
        axes_dirs = f"z{d0} left to right, z{d1} bottom to top"
    else:
        (u, v), sd = grids.principal_directions(mu)
        axes_dirs = f"PC1 left to right (data SD {sd[0]:.2f}), PC2 bottom to top (data SD {sd[1]:.2f})"
    # A VAE's steps are prior SDs; an autoencoder has no prior, so its are the test codes' SDs
    # along each direction (its codes may spread over tens of units, or over hundredths).
    unit = "prior SDs" if ctx.has_prior else "test-code SDs"
    if not ctx.has_prior:
        u, v = u * float(sd[0]), v * float(sd[1])
    span = st.slider(f"Span (+- {unit})", 0.5, 6.0, 3.0, step=0.25, key=f"{k}.span", persist_state="session")
    return grids.plane_grid(base, u, v, n, span), f"{axes_dirs}, +-{span:g} {unit} around {base_desc}"
