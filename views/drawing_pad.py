"""Draw: a pad to draw a digit (a face, an image) with the mouse or a finger, encoded as you draw.

The pad is a small components-v2 canvas (``drawing_pad.js`` and ``drawing_pad.css`` beside
this file). At the end of every stroke it sends the drawing to Python as a PNG, which goes
through exactly the preprocessing an upload does
(:func:`explorer.preprocess.prepare`, MNIST-style for MNIST models) and the encoder; the
page shows mu +- sigma, the reconstruction and the drawing's place on the map. Only this
tab's fragment reruns per stroke.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import streamlit as st

from explorer import figures, neighbors, preprocess
from views.context import ViewContext, prepared_upload
from views.display import encoding_figure, show_encoding

_HERE = Path(__file__).resolve().parent
_pad_component = st.components.v2.component(
    "vae_drawing_pad", css=(_HERE / "drawing_pad.css").read_text(encoding="utf-8"),
    js=(_HERE / "drawing_pad.js").read_text(encoding="utf-8"))

PAD_LONG_SIDE = 280  # px; the model sees 28 px, so a 10x pad with an 18 px pen draws MNIST-like strokes


def drawing_pad(image_shape: tuple[int, int], key: str, hint: str = "") -> bytes | None:
    """Mount a drawing pad with the aspect ratio of ``image_shape`` (H, W). Returns the drawing
    as PNG bytes (white ink on black) after the first stroke, None while it is empty."""
    H, W = image_shape
    s = PAD_LONG_SIDE / max(H, W)
    data = {"pad_id": key, "width": round(W * s), "height": round(H * s), "pen": round(1.8 * s), "hint": hint}
    res = _pad_component(data=data, key=key, default={"drawing": None}, on_drawing_change=lambda: None)
    drawing = getattr(res, "drawing", None)
    png = drawing.get("png") if isinstance(drawing, dict) else None
    if not png or not isinstance(png, str) or not png.startswith("data:image/png;base64,"):
        return None
    try:
        return base64.b64decode(png.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return None


def render(ctx: ViewContext) -> None:
    _panel(ctx)


@st.fragment
def _panel(ctx: ViewContext) -> None:
    name = ctx.name
    H, W = ctx.image_shape
    what = ctx.labels.subject
    left, mid, right = st.columns([1.1, 1, 1.3])
    with left:
        hint = f"draw {what}; it is encoded at the end of each stroke"
        data = drawing_pad((H, W), key=f"draw.pad.{H}x{W}", hint=hint)
    if data is None:
        mid.info(f"Draw {what} on the pad. Every stroke is preprocessed like an upload and encoded.")
        return
    try:
        prep, mu, logvar = prepared_upload(str(ctx.entry.path), ctx.entry.mtime, data, "drawing")
    except preprocess.UploadError as e:
        mid.info(f"{e}. Draw {what} on the pad.")
        return
    with mid:
        show_encoding(ctx, prep.x, mu, f"draw.{name}.send")
    with right:
        fig = encoding_figure(ctx, mu, logvar)
        fig.update_layout(height=max(200, 22 * ctx.z_dim + 90))
        if ctx.has_prior:
            fig.update_layout(title="q(z|drawing): mu ± sigma (grey: prior ±1 SD)")
        st.plotly_chart(fig, key=f"draw.{name}.musigma")
    test_mu, emb, labels = ctx.array("test_mu"), ctx.array("test_embedding"), ctx.array("test_labels")
    if test_mu is None or emb is None or labels is None:
        st.caption("This checkpoint has no usable map of its test set.")
        return
    pos = neighbors.place_on_map(mu, test_mu, emb)
    fig = figures.map_figure(emb, labels, ctx.labels, markers={"drawing": (float(pos[0]), float(pos[1]), "upload")},
                             max_points=3000)
    fig.update_layout(height=420, dragmode="pan")
    st.markdown("**The drawing on the map** (star; placed at its nearest test points' weighted mean position)")
    st.plotly_chart(fig, key=f"draw.{name}.map")
