"""Sliders: one per latent dimension; the decoded image follows. Only the fragment reruns
when a slider moves, so the rest of the page stays put.

The sliders show the model's current point (``views/state.py``) and write back to it; a point
set anywhere else gives them fresh widgets at that point (see :func:`views.state.slider_key`).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import models
from views import state
from views.context import ViewContext
from views.display import show, typicality_md


def render(ctx: ViewContext) -> None:
    _panel(ctx)


@st.fragment
def _panel(ctx: ViewContext) -> None:
    name, J, box = ctx.name, ctx.z_dim, ctx.box
    b = st.columns(4)
    b[0].button("Reset to origin" if ctx.has_prior else "Reset to the mean code", key=f"sl.{name}.reset",
                on_click=state.reset_z, args=(name, J))
    mu = ctx.array("test_mu")
    if ctx.has_prior:
        b[1].button("Random prior sample", key=f"sl.{name}.rand", on_click=state.set_random_z, args=(name, J))
    elif mu is not None:  # an autoencoder has no prior to draw from: a random test image's code instead
        b[1].button("Random test code", key=f"sl.{name}.rand", on_click=state.set_random_code, args=(name, mu))
    if mu is not None:
        with b[2].popover("Dataset point"):
            row = st.number_input(f"Test row (0..{len(mu) - 1})", 0, len(mu) - 1, 0, key=f"sl.{name}.row")
            st.button(state.USE_AS_CURRENT, key=f"sl.{name}.go", on_click=state.set_z, args=(name, mu[int(row)]))
    enc = ctx.upload_encoding()
    if enc is not None and not isinstance(enc, str):
        b[3].button("Upload's encoding", key=f"sl.{name}.up", on_click=state.set_z, args=(name, enc[1]))

    z = box.snap(ctx.current_z())  # the one source of truth; the sliders start there
    left, right = st.columns([3, 2])
    with left:
        ncol = 1 if J <= 5 else (2 if J <= 10 else 3)
        cols = st.columns(ncol)
        for j in range(J):
            key = state.slider_key(name, j)
            cols[j % ncol].slider(f"z{j}", float(box.lo[j]), float(box.hi[j]), float(z[j]), step=box.step,
                                  key=key, format=box.format, on_change=state.slider_moved, args=(name, J, j, key))
    with right:
        show(ctx.decode_now(z.astype(np.float32)), target=280, max_factor=8, inline=True,
             caption="decoded mean E[x|z]" if ctx.has_prior else "decoded image x'(z)")
        if ctx.has_prior:
            st.markdown(typicality_md(z))
            far = [f"z{j} ({a:.1f} SD)" for j, a in enumerate(np.abs(z)) if a > 2.5]
            if far:
                st.caption("Beyond 2.5 SD: " + ", ".join(far))
        else:
            st.caption(models.no_prior_reason(ctx.ck, "Judging how typical a point is") + " The sliders span "
                       "the range of the encoded test set instead.")
        st.caption("The decoder has only seen points near where the encoder puts data, so points far out "
                   "decode to blurs or garbage.")
