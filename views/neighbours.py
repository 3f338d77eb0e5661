"""An encoding's nearest test images (Encode an upload): their reconstructions and originals,
their label vote, what the reconstruction itself looks like, and a note when the two differ."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import images, neighbors
from explorer.originals import originals_for_rows
from views.context import ViewContext
from views.display import show

K = 8


def _vote_text(ctx: ViewContext, votes: list[tuple[int, int]]) -> str:
    return " · ".join(f"**{ctx.labels.name(v)}** ({n} of {K})" if i == 0 else f"{ctx.labels.name(v)} ({n})"
                      for i, (v, n) in enumerate(votes))


def render(ctx: ViewContext, mu: np.ndarray, rec: np.ndarray) -> None:
    """Neighbours of the encoding ``mu`` (J,), whose reconstruction is ``rec`` (H, W)."""
    test_mu, labels = ctx.array("test_mu"), ctx.array("test_labels")
    idx, dist = neighbors.nearest(mu, test_mu, k=K)
    st.markdown(f"**The {len(idx)} nearest encoded test images** (Euclidean distance between posterior means)")
    left, right = st.columns([3, 2])
    with left:
        named = "" if labels is None else f"; {ctx.labels.noun}s " + ", ".join(ctx.labels.name(v) for v in labels[idx])
        show(images.tile(ctx.decode(test_mu[idx]), ncols=len(idx)), target=640, max_factor=4,
             caption="reconstructions, nearest first: distance " + ", ".join(f"{d:.2f}" for d in dist) + named)
        index = ctx.array("test_index")
        x, _ = ctx.test_images() if index is not None else (None, None)
        orig = originals_for_rows(x, index, idx) if x is not None else None
        if orig is not None and orig.shape[1:] == tuple(ctx.image_shape):
            show(images.tile(orig, ncols=len(idx)), target=640, max_factor=4, caption="their originals")
    if labels is None or not ctx.labels.categorical:
        return
    votes = neighbors.label_vote(labels[idx])
    bank = ctx.reconstruction_pixels()
    looks = None
    if bank is not None:
        ridx, _ = neighbors.nearest(neighbors.pooled_pixels(rec), bank, k=K)
        looks = neighbors.label_vote(labels[ridx])
    with right:
        st.markdown(f"**The neighbours vote:** {_vote_text(ctx, votes)}")
        if looks is not None:
            st.markdown(f"**The reconstruction looks like:** {_vote_text(ctx, looks)}")
            st.caption(f"the labels of the {K} test images whose reconstructions are nearest to it, pixel by pixel")
        if looks is not None and looks[0][0] != votes[0][0]:
            said, seen = ctx.labels.describe(votes[0][0]), ctx.labels.describe(looks[0][0])
            st.warning(f"The neighbours say {said}, but the reconstruction looks like {seen}: the encoder put this "
                       f"image among test images of other {ctx.labels.noun}s than the one the decoder draws from here.")
