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
