"""An encoding's nearest test images (Encode an upload): their reconstructions and originals,
their label vote, the labels of the test images that look most like the reconstruction, and a
note when the two votes differ.

How far to trust the note: on the test sets each vote alone matches the true label about as
often (mnist-z20: 96.6% latent, 96.3% look-alike; ``bench/neighbours_labels.py``); on 200
printed digits (20 fonts) the two disagreed for 46 on mnist-z20, and then each was right
only about a third of the time. So the note points the user at the picture; it does not
claim which digit it is."""

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
    between = "posterior means" if ctx.has_prior else "codes"
    st.markdown(f"**The {len(idx)} nearest encoded test images** (Euclidean distance between {between})")
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
        if votes[0][1] <= K // 2:
            st.caption(f"A split vote: this encoding lies between {ctx.labels.noun}s.")
        if looks is not None:
            st.markdown(f"**Test images that look most like the reconstruction:** {_vote_text(ctx, looks)}")
            st.caption(f"the {K} test images whose reconstructions are nearest to this one, pixel by pixel")
        if looks is not None and looks[0][0] != votes[0][0]:
            said, seen = ctx.labels.describe(votes[0][0]), ctx.labels.describe(looks[0][0])
            st.warning(f"These disagree: the encoder put this image among encodings of {said}, while its "
                       f"reconstruction looks most like {seen}. Look at the reconstruction yourself: the "
                       "neighbours say where the model filed the image, the picture what it draws from there.")
