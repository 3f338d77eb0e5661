"""Manifold grid: decode a grid of latent points into one picture (the paper's Fig. 4 for a
2-D latent; a plane through a chosen point along two dimensions or principal directions)."""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from explorer import grids, images, models
from views.context import ViewContext
from views.display import show
from views.points import pick_point


def render(ctx: ViewContext) -> None:
    J, name = ctx.z_dim, ctx.name
    k = f"grid.{name}"
    modes = (["Fig. 4: inverse Gaussian CDF"] if J == 2 else []) + ["Plane through a point"]
    c1, c2 = st.columns([1, 2])
    with c1:
        mode = st.radio("Grid", modes, key=f"{k}.mode", persist_state="session")
        n = st.slider("Grid size (images per side)", 3, 30, grids.default_grid_size(ctx.image_shape),
                      key=f"{k}.n", persist_state="session")
        if mode.startswith("Fig. 4"):
            cov = st.slider("Span (central probability mass covered)", 0.50, 0.999, 0.90, step=0.005,
                            key=f"{k}.cov", persist_state="session", format="%.3f")
            z = grids.fig4_grid(n, cov)
            q = float(grids.gaussian_quantiles(2, cov)[1])
            axes = (f"z0 left to right, z1 bottom to top, each over +-{q:.2f} SD "
                    f"(quantiles {(1 - cov) / 2:.3f}..{(1 + cov) / 2:.3f})")
        else:
            base, base_desc = pick_point(ctx, "Through", key=f"{k}.base")
            dir_opts = ["Two latent dimensions"]
            mu = ctx.array("test_mu")
            if mu is not None and J >= 2:
                dir_opts.append("Two principal directions of the encoded test set")
            how = st.radio("Along", dir_opts, key=f"{k}.dirs", persist_state="session")
            if how.startswith("Two latent"):
                kl = models.kl_per_dim(ctx.ck)
                order = list(np.argsort(-kl)) if kl is not None else list(range(J))
                d0 = st.selectbox("Horizontal dimension", range(J), index=int(order[0]), key=f"{k}.i",
                                  format_func=lambda j: f"z{j}", persist_state="session")
                d1_default = int(order[1]) if int(order[1]) != d0 else int(order[0])
                d1 = st.selectbox("Vertical dimension", range(J), index=d1_default, key=f"{k}.j",
                                  format_func=lambda j: f"z{j}", persist_state="session")
                if d0 == d1:
                    st.error("Pick two different dimensions.")
                    return
                u, v = grids.axis_directions(J, d0, d1)
                axes_dirs = f"z{d0} left to right, z{d1} bottom to top"
            else:
                (u, v), sd = grids.principal_directions(mu)
                axes_dirs = f"PC1 left to right (data SD {sd[0]:.2f}), PC2 bottom to top (data SD {sd[1]:.2f})"
            span = st.slider("Span (+- prior SDs)", 0.5, 6.0, 3.0, step=0.25, key=f"{k}.span",
                             persist_state="session")
            z = grids.plane_grid(base, u, v, n, span)
            axes = f"{axes_dirs}, +-{span:g} SD around {base_desc}"
    with c2:
        imgs = ctx.decode(z)  # (n, n, H, W)
        pic = images.tile(imgs, pad=1)
        show(pic, f"{n}x{n} decoded means: {axes}", target=grids.PICTURE_PX, max_factor=6)
        # Encoded only when clicked: an optimised 2x PNG costs tens of ms, on every rerun otherwise.
        st.download_button("Download PNG", functools.partial(images.png_bytes, pic, factor=2),
                           file_name=f"{name}-grid.png", mime="image/png", key=f"{k}.png", on_click="ignore")
