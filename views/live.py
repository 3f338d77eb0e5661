"""Live: latent sliders decoded in the browser while they move (views/live_component.py).

When a drag ends the point becomes the app's current latent point (``views/state.py``), so
the map marker, the server-side Sliders tab and the grids follow. Python-side buttons move
the sliders the other way.
"""

from __future__ import annotations

import functools

import streamlit as st

from explorer import latent
from explorer.live_decoder import LivePayload, pack_decoder
from views import state
from views.context import ViewContext, loaded
from views.live_component import live_decoder, reported_z


@st.cache_resource(show_spinner=False, max_entries=16)
def decoder_payload(path: str, mtime: float) -> LivePayload:
    """The decoder of one checkpoint version as safetensors bytes (built once, shared by sessions)."""
    ck = loaded(path, mtime)
    return pack_decoder(ck.model, name=ck.name)


def _take_report(model: str, key: str) -> None:
    z = reported_z(key)
    if z is not None:
        state.set_z(model, z)


def render(ctx: ViewContext) -> None:
    name, J = ctx.name, ctx.z_dim
    payload = decoder_payload(str(ctx.entry.path), ctx.entry.mtime)
    key = f"live.{name}"
    st.caption(
        "Drag a slider: the decoder runs in your browser and the image follows every movement. "
        "When you let go, the point becomes the app's current point (map marker, Sliders tab, grids)."
    )
    box = ctx.box
    with st.container(horizontal=True):
        st.button("Reset to origin" if ctx.has_prior else "Reset to the mean code", key=f"{key}.reset",
                  on_click=state.reset_z, args=(name, J))
        codes = None if ctx.has_prior else ctx.array("test_mu")
        if ctx.has_prior:
            st.button("Random prior sample", key=f"{key}.rand", on_click=state.set_random_z, args=(name, J))
        elif codes is not None:  # an autoencoder has no prior to draw from: a random test image's code instead
            st.button("Random test code", key=f"{key}.rand", on_click=state.set_random_code, args=(name, codes))
    z = ctx.current_z()
    live_decoder(payload, z, key=key, span=state.SLIDER_RANGE, step=box.step, lo=box.lo, hi=box.hi,
                 on_change=functools.partial(_take_report, name, key))
    if ctx.has_prior:
        t = latent.typicality(z)
        where = f"App's current point: ||z||² = {t.sq_norm:.2f}, {t.verdict} under the prior. "
    else:
        where = "The sliders span the range of the encoded test set (this autoencoder has no prior to measure by). "
    st.caption(where + f"The browser received {payload.n_bytes / 1e6:.2f} MB of float32 decoder weights for "
               "this model, once.")
