"""Encode an upload: preprocessing steps, q(z|x), reconstruction, neighbours, place on the map."""

from __future__ import annotations

import streamlit as st

from explorer import figures, images, neighbors, preprocess
from views import neighbours, state
from views.context import ViewContext
from views.display import encoding_figure, show_encoding

STEP_PX = 140


def render(ctx: ViewContext) -> None:
    name = ctx.name
    style = preprocess.style_for_dataset(ctx.dataset)
    H, W = ctx.image_shape
    how = ("MNIST-style: the ink is found (a phone photo of paper works: uneven light is divided out, specks "
           "dropped), cut out at full resolution, scaled to 20 px and centred by mass"
           if style == "mnist" else f"cropped to the model's aspect ratio and resized to {W}x{H}")
    f = st.file_uploader(f"An image (PNG, JPEG, GIF, BMP or WebP); it is {how}.",
                         type=preprocess.UPLOAD_TYPES, key="upload_file")
    if f is not None:
        state.set_upload(f.name, f.getvalue())
    up = state.get_upload()
    if up is None:
        st.info("Upload an image to see how the model encodes it.")
        return
    if f is None:
        st.caption(f"Showing the earlier upload {up['name']}.")
        st.button("Clear upload", key="upload.clear", on_click=state.clear_upload)
    enc = ctx.upload_encoding()
    if isinstance(enc, str):
        st.error(enc)
        return
    prep, mu, logvar = enc
    for note in prep.notes:
        st.info(f"{up['name']}: {note}")
    st.markdown(f"**Preprocessing** ({prep.format}, {prep.size[0]}x{prep.size[1]} px)")
    cols = st.columns(len(prep.steps))
    for c, s in zip(cols, prep.steps):
        # Every step in the same STEP_PX square (grey frame), so the captions line up and wrap by word.
        c.image(images.to_uint8(images.letterbox(s.image, STEP_PX)),
                caption=f"{s.title}: {s.note}" if s.note else s.title, output_format="PNG")
    left, right = st.columns([1, 1])
    with left:
        st.plotly_chart(encoding_figure(ctx, mu, logvar), key=f"upload.{name}.musigma")
    with right:
        show_encoding(ctx, prep.x, mu, f"upload.{name}.send")
    test_mu = ctx.array("test_mu")
    if test_mu is None:
        st.caption(ctx.problems.get("test_mu", "No encoded test set: no neighbours or map."))
        return
    neighbours.render(ctx, mu, ctx.decode(mu))
    emb, labels = ctx.array("test_embedding"), ctx.array("test_labels")
    if emb is not None and labels is not None:
        pos = neighbors.place_on_map(mu, test_mu, emb)
        fig = figures.map_figure(emb, labels, ctx.labels, markers={"upload": (float(pos[0]), float(pos[1]), "upload")},
                                 max_points=3000)
        fig.update_layout(height=420, dragmode="pan")
        st.markdown("**The upload on the map** (placed at its nearest neighbours' weighted mean position)")
        st.plotly_chart(fig, key=f"upload.{name}.map")
