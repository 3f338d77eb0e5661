"""Sliders: one per latent dimension; the decoded image follows. Only the fragment reruns
when a slider moves, so the rest of the page stays put."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import latent
from views import state
from views.context import ViewContext
from views.display import show

VERDICT_COLOR = {"typical": "green", "unusual": "orange", "far outside the prior": "red"}


def _set(model: str, z) -> None:
    state.set_z(model, z)


def _random(model: str, z_dim: int) -> None:
    seed = st.session_state.get("sliders.seed", 0) + 1
    st.session_state["sliders.seed"] = seed
    state.set_z(model, latent.prior_samples(1, z_dim, seed)[0])


def render(ctx: ViewContext) -> None:
    _panel(ctx)


@st.fragment
def _panel(ctx: ViewContext) -> None:
    name, J = ctx.name, ctx.z_dim
    z0 = ctx.current_z()
    for j in range(J):  # sliders start where the shared point is (and come back there)
        st.session_state.setdefault(state.slider_key(name, j), float(np.clip(z0[j], -4, 4)))
    b = st.columns(4)
    b[0].button("Reset to origin", key=f"sl.{name}.reset", on_click=_set, args=(name, np.zeros(J)))
    b[1].button("Random prior sample", key=f"sl.{name}.rand", on_click=_random, args=(name, J))
    mu = ctx.array("test_mu")
    if mu is not None:
        with b[2].popover("Dataset point"):
            row = st.number_input(f"Test row (0..{len(mu) - 1})", 0, len(mu) - 1, 0, key=f"sl.{name}.row")
            st.button("Go", key=f"sl.{name}.go", on_click=_set, args=(name, mu[int(row)]))
    enc = ctx.upload_encoding()
    if enc is not None and not isinstance(enc, str):
        b[3].button("Upload's encoding", key=f"sl.{name}.up", on_click=_set, args=(name, enc[1]))

    left, right = st.columns([3, 2])
    with left:
        ncol = 1 if J <= 5 else (2 if J <= 10 else 3)
        cols = st.columns(ncol)
        for j in range(J):
            with cols[j % ncol]:
                st.slider(f"z{j}", -state.SLIDER_RANGE, state.SLIDER_RANGE, step=0.05,
                          key=state.slider_key(name, j), format="%.2f")
    z = np.array([st.session_state[state.slider_key(name, j)] for j in range(J)], dtype=np.float32)
    st.session_state.setdefault(state.Z_KEY, {})[name] = [float(v) for v in z]
    with right:
        img = ctx.decode_now(z)
        show(img, target=280, max_factor=8, caption="decoded mean E[x|z]", inline=True)
        t = latent.typicality(z)
        st.markdown(
            f"**Under the prior:** :{VERDICT_COLOR[t.verdict]}[{t.verdict}]  \n"
            f"||z||² = {t.sq_norm:.2f}, at the {100 * t.percentile:.1f}th percentile of χ²({J})"
        )
        far = [f"z{j} ({a:.1f} SD)" for j, a in enumerate(t.abs_sd) if a > 2.5]
        if far:
            st.caption("Beyond 2.5 SD: " + ", ".join(far))
        st.caption("Prior draws have ||z||² near J; the decoder has only seen points near where the "
                   "encoder puts data, so far-out points decode to blurs or garbage.")
