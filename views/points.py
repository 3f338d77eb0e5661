"""A shared widget group: choose a latent point (origin, dataset point, prior sample, the
current slider point, or the upload). Used by the grid, interpolation and slider views."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.latent import prior_samples
from views.context import ViewContext

SOURCES = ("Origin", "Dataset point", "Prior sample", "Current slider point", "Upload")


def pick_point(ctx: ViewContext, label: str, key: str, default: str = "Origin",
               sources: tuple[str, ...] = SOURCES) -> tuple[np.ndarray, str]:
    """Widgets to choose a point; returns (z (J,), a short description). Sources that need
    something absent (no stored test_mu, no upload) still appear and explain themselves."""
    src = st.selectbox(label, sources, index=sources.index(default), key=f"{key}.src", persist_state="session")
    J = ctx.z_dim
    if src == "Dataset point":
        mu = ctx.array("test_mu")
        if mu is None:
            st.warning(ctx.problems.get("test_mu", "no encoded test set in this checkpoint"))
            return np.zeros(J, np.float32), "origin (no dataset points)"
        row = st.number_input(f"Test row (0..{len(mu) - 1})", 0, len(mu) - 1, 0, key=f"{key}.row",
                              persist_state="session")
        labels = ctx.array("test_labels")
        lab = f", label {int(labels[row])}" if labels is not None else ""
        return mu[int(row)].astype(np.float32), f"test row {int(row)}{lab}"
    if src == "Prior sample":
        seed = st.number_input("Seed", 0, 1_000_000, 0, key=f"{key}.seed", persist_state="session")
        return prior_samples(1, J, int(seed))[0], f"prior sample, seed {int(seed)}"
    if src == "Current slider point":
        return ctx.current_z(), "current slider point"
    if src == "Upload":
        enc = ctx.upload_encoding()
        if enc is None:
            st.info("No upload yet: add one in the 'Encode an upload' tab. Using the origin.")
            return np.zeros(J, np.float32), "origin (no upload)"
        if isinstance(enc, str):
            st.error(enc)
            return np.zeros(J, np.float32), "origin (bad upload)"
        return enc[1].astype(np.float32), "upload"
    return np.zeros(J, np.float32), "origin"
