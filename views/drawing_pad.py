"""Draw: a pad to draw a digit (or a face) with the mouse or a finger, encoded as you draw.

The pad is a small components-v2 canvas. At the end of every stroke it sends the drawing to
Python as a PNG, which goes through exactly the preprocessing an upload does
(:func:`explorer.preprocess.prepare`, MNIST-style for MNIST models) and the encoder; the
page shows mu +- sigma, the reconstruction and the drawing's place on the map. Only this
tab's fragment reruns per stroke.
"""

from __future__ import annotations

import base64
import binascii

import streamlit as st

from explorer import figures, neighbors, preprocess
from views.context import ViewContext, prepared_upload
from views.display import show_encoding

_PAD_JS = r"""
function createPad(root) {
  const el = document.createElement("div");
  el.className = "pad";
  el.innerHTML = '<canvas class="pad-canvas"></canvas><div class="pad-bar">' +
    '<button type="button" class="pad-clear">Clear</button><span class="pad-hint"></span></div>';
  root.appendChild(el);
  const canvas = el.querySelector("canvas");
  const g = canvas.getContext("2d");
  const pad = { id: null, strokes: 0, drawing: false, send: null, pen: 18 };
  const store = (window.__vaePadImages = window.__vaePadImages || {});

  function blank() {
    g.fillStyle = "#000"; g.fillRect(0, 0, canvas.width, canvas.height);
  }
  function emit() {
    const png = pad.strokes > 0 ? canvas.toDataURL("image/png") : null;
    store[pad.id] = png;
    window.__vaePadLastSend = performance.now();
    if (pad.send) pad.send("drawing", { png, strokes: pad.strokes });
  }
  // Canvas pixels per CSS pixel (1 unless page zoom or layout scaled the element).
  function at(e) { return [e.offsetX * canvas.width / canvas.clientWidth, e.offsetY * canvas.height / canvas.clientHeight]; }
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    pad.drawing = true;
    const [x, y] = at(e);
    g.beginPath(); g.moveTo(x, y); g.lineTo(x + 0.01, y); g.stroke();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!pad.drawing) return;
    const evs = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const c of evs.length ? evs : [e]) { const [x, y] = at(c); g.lineTo(x, y); }
    g.stroke();
  });
  const end = () => {
    if (!pad.drawing) return;
    pad.drawing = false;
    pad.strokes += 1;
    emit();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  el.querySelector(".pad-clear").addEventListener("click", () => { blank(); pad.strokes = 0; emit(); });

  pad.configure = (data) => {
    if (pad.id === data.pad_id && canvas.width === data.width && canvas.height === data.height) return;
    pad.id = data.pad_id;
    canvas.width = data.width; canvas.height = data.height;
    canvas.style.width = data.width + "px"; canvas.style.height = data.height + "px";
    el.querySelector(".pad-hint").textContent = data.hint || "";
    blank();
    g.strokeStyle = "#fff"; g.lineWidth = data.pen; g.lineCap = "round"; g.lineJoin = "round";
    // Coming back to the tab: redraw what was on the pad (Python still holds its encoding).
    const saved = store[pad.id];
    if (saved) {
      const im = new Image();
      im.onload = () => { g.drawImage(im, 0, 0); pad.strokes = Math.max(pad.strokes, 1); };
      im.src = saved;
    }
  };
  return pad;
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let pad = parentElement.__vaePad;
  if (!pad) { pad = createPad(parentElement); parentElement.__vaePad = pad; }
  pad.send = setStateValue;
  if (data) pad.configure(data);
}
"""

_PAD_CSS = r"""
.pad { display: inline-flex; flex-direction: column; align-items: flex-start; gap: 6px; font-family: var(--st-font, sans-serif); }
.pad-canvas { touch-action: none; cursor: crosshair; border-radius: 6px;
              border: 1px solid var(--st-border-color, #ccc); }
.pad-bar { display: flex; gap: 10px; align-items: center; font-size: 0.85rem; }
.pad-hint { opacity: 0.65; }
.pad-clear { font: inherit; padding: 4px 14px; border-radius: 6px; cursor: pointer;
             border: 1px solid var(--st-border-color, #ccc); background: var(--st-secondary-background-color, #f0f2f6);
             color: var(--st-text-color, #222); }
"""

_pad_component = st.components.v2.component("vae_drawing_pad", css=_PAD_CSS, js=_PAD_JS)

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
    style = preprocess.style_for_dataset(ctx.dataset)
    what = "a digit" if style == "mnist" else "a face"
    left, mid, right = st.columns([1.1, 1, 1.3])
    with left:
        data = drawing_pad((H, W), key=f"draw.pad.{H}x{W}", hint=f"draw {what}; it is encoded at the end of each stroke")
    if data is None:
        mid.info(f"Draw {what} on the pad. Every stroke is preprocessed like an upload and encoded.")
        return
    try:
        prep, mu, logvar = prepared_upload(str(ctx.entry.path), ctx.entry.mtime, data, "drawing")
    except preprocess.UploadError as e:
        mid.info(f"{e}. Draw {what} on the pad.")
        return
    with mid:
        show_encoding(ctx, prep.x, mu, "Use as the current point", f"draw.{name}.send",
                      ":gray[||mu||² at the {pct}th percentile of χ²({J}): {verdict}]")
    with right:
        fig = figures.mu_sigma_figure(mu, logvar)
        fig.update_layout(height=max(200, 22 * ctx.z_dim + 90), title="q(z|drawing): mu ± sigma (grey: prior ±1 SD)")
        st.plotly_chart(fig, key=f"draw.{name}.musigma")
    test_mu, emb, labels = ctx.array("test_mu"), ctx.array("test_embedding"), ctx.array("test_labels")
    if test_mu is None or emb is None or labels is None:
        st.caption("This checkpoint has no usable map of its test set.")
        return
    pos = neighbors.place_on_map(mu, test_mu, emb)
    categorical = ctx.dataset == "mnist" or bool(ctx.ck.meta.get("label_names"))
    fig = figures.map_figure(emb, labels, categorical=categorical, label_names=ctx.ck.meta.get("label_names"),
                             markers={"drawing": (float(pos[0]), float(pos[1]), "upload")}, max_points=3000)
    fig.update_layout(height=420, dragmode="pan")
    st.markdown("**The drawing on the map** (star; placed at its nearest test points' weighted mean position)")
    st.plotly_chart(fig, key=f"draw.{name}.map")
