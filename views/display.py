"""What several views show the same way: float images (upscaled with nearest neighbour, always
PNG: Streamlit's "auto" picks JPEG for arrays, which smears a 28x28 digit), an encoded image
with its verdict under the prior (an autoencoder: why there is none), and that verdict's wording."""

from __future__ import annotations

import io

import numpy as np
import streamlit as st
from PIL import Image

from explorer import figures, grids, images, latent, models
from views import state

VERDICT_COLOR = {latent.TYPICAL: "green", latent.CLOSE: "blue", latent.UNUSUAL: "orange", latent.FAR: "red"}


@st.cache_data(show_spinner=False, max_entries=256)
def _png(img: np.ndarray, factor: int) -> bytes:
    """PNG of ``img`` (h, w) upscaled by ``factor``, shared by every session showing the same
    picture (a default grid, the prior samples): hashing the array costs far less than encoding."""
    buf = io.BytesIO()
    Image.fromarray(images.display(img, factor)).save(buf, format="PNG")
    return buf.getvalue()


def show(img: np.ndarray, caption: str | None = None, target: int = 280, max_factor: int = 8, where=st,
         inline: bool = False) -> None:
    """``img`` (h, w) floats in [0, 1], its longer side shown at ``target`` px (at most
    ``max_factor`` screen pixels per image pixel; see :func:`explorer.images.display_size`),
    or narrower where the column is narrower. The width is fixed by a container of that width
    (capped at its parent's): left to Streamlit, an image stretches to its caption's width, and
    an image's own pixel width would overflow a narrow page.
    ``inline``: send the PNG inside the page update (a data URI) instead of as a media file the
    browser then fetches; saves a round trip where an image changes on every slider move."""
    f, width = images.display_size(img.shape, target=target, max_factor=max_factor)
    box = where.container(width=width)
    if inline:
        box.image(images.png_data_uri(img, f), caption=caption, width="stretch")
    else:
        box.image(_png(np.asarray(img, dtype=np.float32), f), caption=caption, output_format="PNG", width="stretch")


def typicality_md(z: np.ndarray, name: str = "||z||²") -> str:
    """Markdown: the verdict on ``z`` (J,) under the prior, coloured, with ``name`` (||z||² or
    ||mu||²), its percentile of chi-square(J) and the range that counts as typical."""
    t = latent.typicality(z)
    J = int(np.size(z))
    lo, hi = t.typical_range
    md = (f"**Under the prior:** :{VERDICT_COLOR[t.verdict]}[{t.verdict}]  \n"
          f"{name} = {t.sq_norm:.2f}, at the {100 * t.percentile:.1f}th percentile of χ²({J}); "
          f"95% of prior draws have {name} " + (f"between {lo:.1f} and {hi:.1f}." if lo > 0 else f"below {hi:.1f}."))
    if t.verdict == latent.CLOSE:
        md += (f"  \n:small[:gray[In {J} dimensions prior draws lie in a shell around {name} ≈ {J}, not at the "
               "centre: the density is highest here, yet hardly any draw (or encoded image) comes this close.]]")
    return md


def show_encoding(ctx, x: np.ndarray, mu: np.ndarray, send_key: str) -> None:
    """What an encoded image (upload or drawing) shows beside its mu +- sigma chart: the model
    input next to its reconstruction from mu, how typical mu is under the prior, and the
    button that makes mu the app's current point. ``x`` (H, W) model input, ``mu`` (J,)."""
    rec = ctx.decode(mu)
    pair = images.tile(np.stack([x, rec]), ncols=2, pad=2)
    show(pair, target=320, max_factor=8,
         caption="model input | reconstruction (decoded " + ("mu)" if ctx.has_prior else "code)"))
    if ctx.has_prior:
        st.markdown(typicality_md(mu, "||mu||²"))
    else:
        st.caption(models.no_prior_reason(ctx.ck, "Judging how typical this code is"))
    st.button(state.USE_AS_CURRENT, key=send_key, on_click=state.set_z, args=(ctx.name, mu), type="primary")


def encoding_figure(ctx, mu: np.ndarray, logvar: np.ndarray | None):
    """The plotly figure of an encoding: a VAE's mu +- sigma over the prior's band, an
    autoencoder's code over where the test codes lie (central 95% per dimension)."""
    test_mu = None if ctx.has_prior else ctx.array("test_mu")
    band = grids.code_range(test_mu, 0.95) if test_mu is not None and len(test_mu) >= 2 else None
    return figures.mu_sigma_figure(mu, logvar, band=band)
