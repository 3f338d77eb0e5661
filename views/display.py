"""Showing float images in the page: upscaled with nearest neighbour, always as PNG
(Streamlit's "auto" picks JPEG for arrays, which smears a 28x28 digit)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import images


def show(img: np.ndarray, caption: str | None = None, target: int = 280, max_factor: int = 8, where=st,
         inline: bool = False) -> None:
    """``img`` (h, w) floats in [0, 1], scaled up by an integer factor towards ``target`` px.
    ``inline``: send the PNG inside the page update (a data URI) instead of as a media file the
    browser then fetches; saves a round trip where an image changes on every slider move."""
    f = images.auto_factor(img.shape, target=target, max_factor=max_factor)
    if inline:
        where.image(images.png_data_uri(img, f), caption=caption)
    else:
        where.image(images.display(img, f), caption=caption, output_format="PNG")


def show_encoding(ctx, x: np.ndarray, mu: np.ndarray, send_label: str, send_key: str, verdict_md: str) -> None:
    """What an encoded image (upload or drawing) shows beside its mu +- sigma chart: the model
    input next to its reconstruction from mu, how typical mu is under the prior, and a button
    that makes mu the app's current point. ``x`` (H, W) model input, ``mu`` (J,).
    ``verdict_md`` formats the typicality line with ``{verdict}``, ``{pct}`` and ``{J}``."""
    from explorer import latent
    from views import state

    rec = ctx.decode(mu)
    pair = images.tile(np.stack([x, rec]), ncols=2, pad=2)
    show(pair, target=320, max_factor=8, caption="model input | reconstruction (decoded mu)")
    t = latent.typicality(mu)
    st.markdown(verdict_md.format(verdict=t.verdict, pct=f"{100 * t.percentile:.1f}", J=ctx.z_dim))
    st.button(send_label, key=send_key, on_click=state.set_z, args=(ctx.name, mu), type="primary")
