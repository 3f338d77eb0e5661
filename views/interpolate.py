"""Interpolate: decoded images along a path between two latent points; PNG and GIF downloads."""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from explorer import images, latent
from views.context import ViewContext
from views.display import show
from views.points import contrasting_row, pick_point


def render(ctx: ViewContext) -> None:
    k = f"interp.{ctx.name}"
    a, b, c = st.columns(3)
    # Default: two test images of different classes (a prior draw can decode to a blob in high J).
    with a:
        z0, d0 = pick_point(ctx, "From", key=f"{k}.a", default="Dataset point")
    with b:
        z1, d1 = pick_point(ctx, "To", key=f"{k}.b", default="Dataset point", default_row=contrasting_row(ctx))
    with c:
        steps = st.slider("Steps", 3, 24, 10, key=f"{k}.steps", persist_state="session")
        mode = st.radio("Path", ["linear", "slerp"], key=f"{k}.mode", horizontal=True, persist_state="session",
                        help="linear: the straight line in latent space. slerp: along the great circle, "
                             "which keeps ||z|| typical in high dimensions.")
    path = latent.interpolate(z0, z1, steps, mode)
    frames = ctx.decode(path)  # (steps, H, W)
    strip = images.tile(frames, ncols=steps)
    show(strip, target=1200, max_factor=6, caption=f"{d0} → {d1}, {steps} steps ({mode})")
    norms = np.linalg.norm(path, axis=1)
    st.caption("||z|| along the path: " + " ".join(f"{v:.2f}" for v in norms))
    c1, c2 = st.columns(2)
    # Encoded when clicked, not on every rerun.
    c1.download_button("Download PNG", functools.partial(images.png_bytes, strip, factor=4),
                       file_name=f"{ctx.name}-interpolation.png", mime="image/png", key=f"{k}.png", on_click="ignore")
    c2.download_button("Download GIF", functools.partial(images.gif_bytes, frames, factor=6),
                       file_name=f"{ctx.name}-interpolation.gif", mime="image/gif", key=f"{k}.gif", on_click="ignore")
