"""A shared widget group: choose a latent point (origin, a test image's encoding, prior sample,
the app's current point, or the upload). Used by the Manifold grid, Interpolate and
Directions views."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.latent import prior_samples
from views.context import ViewContext

SOURCES = ("Origin", "Dataset point", "Prior sample", "Current point", "Upload")
MEAN_CODE = "Mean code"  # an autoencoder's "Origin": the mean of its test codes


def pick_point(ctx: ViewContext, label: str, key: str, default: str = "Origin",
               sources: tuple[str, ...] = SOURCES, default_row: int = 0) -> tuple[np.ndarray, str]:
    """Widgets to choose a point; returns (z (J,), a short description). Sources that need
    something absent (no stored test_mu, no upload) still appear and explain themselves.
    ``default_row``: the test row a "Dataset point" starts at. An autoencoder has no prior: no
    "Prior sample", and its "Origin" is the mean test code (its origin may lie far from any data)."""
    if not ctx.has_prior:
        sources = tuple(MEAN_CODE if s == "Origin" else s for s in sources if s != "Prior sample")
        default = MEAN_CODE if default == "Origin" else default
    src = st.selectbox(label, sources, index=sources.index(default), key=f"{key}.src", persist_state="session")
    J = ctx.z_dim
    origin, origin_desc = (np.zeros(J, np.float32), "origin") if ctx.has_prior else (
        ctx.box.centre.astype(np.float32), "mean code")
    if src == "Dataset point":
        mu = ctx.array("test_mu")
        if mu is None:
            st.warning(ctx.problems.get("test_mu", "no encoded test set in this checkpoint"))
            return origin, f"{origin_desc} (no dataset points)"
        row = st.number_input(f"Test row (0..{len(mu) - 1})", 0, len(mu) - 1, min(default_row, len(mu) - 1),
                              key=f"{key}.row", persist_state="session")
        labels = ctx.array("test_labels")
        lab = f", {ctx.labels.describe(labels[row])}" if labels is not None else ""
        return mu[int(row)].astype(np.float32), f"test row {int(row)}{lab}"
    if src == "Prior sample":
        seed = st.number_input("Seed", 0, 1_000_000, 0, key=f"{key}.seed", persist_state="session")
        return prior_samples(1, J, int(seed))[0], f"prior sample, seed {int(seed)}"
    if src == "Current point":
        return ctx.current_z(), "current point"
    if src == "Upload":
        enc = ctx.upload_encoding()
        if enc is None:
            st.info(f"No upload yet: add one in the 'Encode an upload' tab. Using the {origin_desc}.")
            return origin, f"{origin_desc} (no upload)"
        if isinstance(enc, str):
            st.error(enc)
            return origin, f"{origin_desc} (bad upload)"
        return enc[1].astype(np.float32), "upload"
    return origin, origin_desc


def contrasting_row(ctx: ViewContext, row: int = 0) -> int:
    """A test row to pair with ``row`` for a default interpolation: the first one of another
    class for class labels; otherwise (Frey Face frames) the row whose encoding is farthest
    from ``row``'s among the central half of the test set (a different face, not an outlier)."""
    mu, labels = ctx.array("test_mu"), ctx.array("test_labels")
    if mu is None or len(mu) < 2:
        return row
    if labels is not None and ctx.labels.categorical:
        other = np.flatnonzero(labels != labels[row])
        return int(other[0]) if other.size else (row + 1) % len(mu)
    r = np.linalg.norm(mu, axis=1)
    central = np.flatnonzero(r <= np.median(r))
    return int(central[np.argmax(np.linalg.norm(mu[central] - mu[row], axis=1))])
