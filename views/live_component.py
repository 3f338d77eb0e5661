"""The live decoder: a Streamlit components-v2 component that decodes in the browser.

A Streamlit slider reports only when released and every change costs a server round trip, so
this component runs the decoder MLP in JavaScript instead: one slider per latent dimension,
the image repainted on a canvas at display rate while a slider is dragged, and the latent
point sent back to Python when the drag ends (so the rest of the app follows).

Two components share one JavaScript registry on ``window.__vaeLive``:

- ``vae_live_weights`` receives a model's packed decoder (:func:`explorer.live_decoder.pack_decoder`,
  raw bytes, about 2.2 MB for the largest model) and files it under the model's id. Its data
  never changes while the model stays the same, so Streamlit's message cache sends it once
  per session, not on every rerun.
- ``vae_live_decoder`` draws the sliders and the canvas. Its data is small JSON (model id,
  z, slider range), so a latent point sent from Python costs bytes, not megabytes.

Everything is inline (no build step, no network at run time). Test and benchmark hooks:
``window.__vaeDecode(z, modelId)`` returns the decoded image as a plain array of floats and
``window.__vaeLive.instances[i].stats`` counts painted frames and holds, per frame, the time
from the oldest input event it answers to the end of its paint (``latencies``, ms), the decode
and paint time (``decodeMs``) and when it finished (``paintAt``, ``performance.now()``).
"""

from __future__ import annotations

import streamlit as st

from explorer.live_decoder import LivePayload

# The registry, payload parser and decoder: included in both components' modules; whichever
# runs first creates window.__vaeLive, the other finds it.
_SHARED_JS = r"""
const MAGIC = "VAELIVE1";
const MAX_MODELS = 8;  // decoders kept in memory; the oldest is dropped beyond this

function readHeader(u8) {
  for (let i = 0; i < 8; i++) {
    if (u8[i] !== MAGIC.charCodeAt(i)) throw new Error("vae live payload: bad magic");
  }
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const n = dv.getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(u8.subarray(12, 12 + n)));
  const body = 12 + n + ((4 - ((12 + n) % 4)) % 4);
  return { header, body };
}

function activation(name) {
  switch (name) {
    case "relu": return (y) => { for (let i = 0; i < y.length; i++) if (y[i] < 0) y[i] = 0; };
    case "tanh": return (y) => { for (let i = 0; i < y.length; i++) y[i] = Math.tanh(y[i]); };
    // torch.nn.Softplus(beta=1, threshold=20): linear above the threshold.
    case "softplus": return (y) => { for (let i = 0; i < y.length; i++) if (y[i] <= 20) y[i] = Math.log1p(Math.exp(y[i])); };
    case "elu": return (y) => { for (let i = 0; i < y.length; i++) if (y[i] < 0) y[i] = Math.expm1(y[i]); };
    case "sigmoid": return (y) => { for (let i = 0; i < y.length; i++) y[i] = 1 / (1 + Math.exp(-y[i])); };
    default: throw new Error("vae live payload: unknown activation " + name);
  }
}

function parsePayload(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const { header, body } = readHeader(u8);
  const nBytes = header.n_floats * 4;
  if (body + nBytes !== u8.byteLength) throw new Error("vae live payload: weight block has the wrong size");
  let w;
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) {
    w = new Float32Array(u8.slice(body, body + nBytes).buffer);  // slice: an own, aligned copy
  } else {  // big-endian host: read each float explicitly
    const dv = new DataView(u8.buffer, u8.byteOffset + body, nBytes);
    w = new Float32Array(header.n_floats);
    for (let i = 0; i < w.length; i++) w[i] = dv.getFloat32(4 * i, true);
  }
  const layers = header.layers.map((s) => ({
    nin: s.in, nout: s.out,
    W: w.subarray(s.offset, s.offset + s.in * s.out),
    b: w.subarray(s.offset + s.in * s.out, s.offset + s.in * s.out + s.out),
    act: activation(s.activation),
    y: new Float64Array(s.out),  // scratch; float64 like torch's float32 but with less rounding
  }));
  const xDim = header.image_shape[0] * header.image_shape[1];
  // One decode: z (J,) -> out (H*W,) in [0, 1]. W is (out, in) row-major, as torch stores it.
  function decode(z, out) {
    let x = z;
    for (const L of layers) {
      const { nin, nout, W, b, y } = L;
      for (let o = 0; o < nout; o++) {
        let s = b[o];
        const base = o * nin;
        for (let i = 0; i < nin; i++) s += W[base + i] * x[i];
        y[o] = s;
      }
      L.act(y);
      x = y;
    }
    for (let i = 0; i < xDim; i++) out[i] = x[i];
    return out;
  }
  return { id: header.id, header, zDim: header.z_dim, shape: header.image_shape, xDim, decode, bytes: u8.byteLength };
}

function vaeRegistry() {
  if (window.__vaeLive) return window.__vaeLive;
  const r = {
    models: new Map(),
    waiters: new Map(),
    instances: [],
    add(bytes) {
      const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
      const id = readHeader(u8).header.id;
      let m = r.models.get(id);
      if (!m) {
        m = parsePayload(u8);
        r.models.set(id, m);
        while (r.models.size > MAX_MODELS) r.models.delete(r.models.keys().next().value);
      }
      for (const cb of r.waiters.get(id) || []) cb(m);
      r.waiters.delete(id);
      return m;
    },
    when(id, cb) {
      const m = r.models.get(id);
      if (m) { cb(m); return; }
      if (!r.waiters.has(id)) r.waiters.set(id, []);
      r.waiters.get(id).push(cb);
    },
    decode(id, z) {
      const m = r.models.get(id);
      if (!m) throw new Error("vae live: no decoder loaded with id " + id);
      if (z.length !== m.zDim) throw new Error(`vae live: ${m.zDim}-D latent, got ${z.length} values`);
      return Array.from(m.decode(Float64Array.from(z), new Float32Array(m.xDim)));
    },
  };
  window.__vaeLive = r;
  window.__vaeDecode = (z, id) => r.decode(id || (r.instances.at(-1) || {}).modelId, z);
  return r;
}
"""

_WEIGHTS_JS = _SHARED_JS + r"""
export default function (component) {
  const { data } = component;
  if (data) vaeRegistry().add(data);
}
"""

_DECODER_JS = _SHARED_JS + r"""
function same(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (Math.abs(a[i] - b[i]) > 1e-6) return false;
  return true;
}

function createInstance(root, reg) {
  const el = document.createElement("div");
  el.className = "vl";
  el.innerHTML = '<div class="vl-view"><canvas class="vl-canvas"></canvas>' +
    '<div class="vl-status">loading the decoder...</div></div><div class="vl-sliders"></div>';
  root.appendChild(el);
  const canvas = el.querySelector("canvas");
  const status = el.querySelector(".vl-status");
  const box = el.querySelector(".vl-sliders");
  const ctx2d = canvas.getContext("2d");
  const small = document.createElement("canvas");
  const inst = {
    modelId: null, model: null, z: null, prevDataZ: null, lastSent: null, dragging: false,
    rafPending: false, pendingSince: null, report: null, inputs: [], outputs: [], img: null, out: null,
    stats: { frames: 0, inputs: 0, latencies: [], decodeMs: [], paintAt: [] },
  };
  reg.instances.push(inst);
  let statusAt = 0;

  function paint() {
    inst.rafPending = false;
    const m = inst.model;
    if (!m) return;
    const t0 = performance.now();
    m.decode(inst.z, inst.out);
    const px = inst.img.data;
    for (let i = 0, n = inst.out.length; i < n; i++) {
      const g = Math.max(0, Math.min(255, Math.round(inst.out[i] * 255)));
      px[4 * i] = g; px[4 * i + 1] = g; px[4 * i + 2] = g; px[4 * i + 3] = 255;
    }
    small.getContext("2d").putImageData(inst.img, 0, 0);
    ctx2d.imageSmoothingEnabled = false;
    ctx2d.drawImage(small, 0, 0, canvas.width, canvas.height);
    const t1 = performance.now();
    const s = inst.stats;
    s.frames += 1;
    s.decodeMs.push(t1 - t0);
    s.paintAt.push(t1);
    if (inst.pendingSince !== null) s.latencies.push(t1 - inst.pendingSince);
    if (s.paintAt.length > 5000) for (const a of [s.latencies, s.decodeMs, s.paintAt]) a.splice(0, 2500);
    inst.pendingSince = null;
    canvas.dataset.frames = String(s.frames);
    if (t1 - statusAt > 250) {
      statusAt = t1;
      status.textContent = `decoded in your browser: ${(t1 - t0).toFixed(1)} ms a frame`;
    }
  }

  // Many input events per frame become one decode and paint (requestAnimationFrame coalescing);
  // the earliest event's time is kept so the latency is measured from the oldest unpainted input.
  inst.schedule = (since) => {
    if (inst.pendingSince === null) inst.pendingSince = since;
    if (!inst.rafPending) { inst.rafPending = true; requestAnimationFrame(paint); }
  };

  function setSliders() {
    inst.z.forEach((v, j) => {
      inst.inputs[j].value = String(v);
      inst.outputs[j].textContent = v.toFixed(2);
    });
  }

  function build(n, span, step, labels) {
    box.innerHTML = "";
    inst.inputs = []; inst.outputs = [];
    for (let j = 0; j < n; j++) {
      const row = document.createElement("div");
      row.className = "vl-row";
      row.innerHTML = `<label>${labels[j]}</label><input type="range" min="${-span}" max="${span}" step="${step}">` +
        "<output></output>";
      const input = row.querySelector("input");
      input.setAttribute("aria-label", labels[j]);
      input.dataset.dim = String(j);
      input.addEventListener("pointerdown", () => { inst.dragging = true; });
      input.addEventListener("input", (e) => {
        inst.z[j] = parseFloat(input.value);
        inst.outputs[j].textContent = inst.z[j].toFixed(2);
        inst.stats.inputs += 1;
        inst.schedule(e.timeStamp);
      });
      // "change" fires once when a drag ends (and per key press): then Python hears of it.
      input.addEventListener("change", () => {
        inst.dragging = false;
        inst.lastSent = Array.from(inst.z);
        if (inst.report) inst.report(inst.lastSent);
      });
      box.appendChild(row);
      inst.inputs.push(input);
      inst.outputs.push(row.querySelector("output"));
    }
  }
  inst.onPointerUp = () => { inst.dragging = false; };
  window.addEventListener("pointerup", inst.onPointerUp);

  inst.update = (data) => {
    const z = data.z.map(Number);
    if (data.model_id !== inst.modelId) {
      inst.modelId = data.model_id;
      inst.model = null;
      inst.z = Float64Array.from(z);
      inst.prevDataZ = z;
      inst.lastSent = null;
      build(z.length, data.span, data.step, data.labels);
      setSliders();
      const [h, w] = data.image_shape;
      small.width = w; small.height = h;
      canvas.width = w * data.scale; canvas.height = h * data.scale;
      canvas.style.width = canvas.width + "px"; canvas.style.height = canvas.height + "px";
      inst.img = new ImageData(w, h);
      inst.out = new Float32Array(w * h);
      status.textContent = "loading the decoder...";
      const id = data.model_id;
      reg.when(id, (m) => {
        if (inst.modelId !== id) return;
        inst.model = m;
        status.textContent = "decoded in your browser";
        inst.schedule(performance.now());
      });
      return;
    }
    // Python sent a point: follow it unless it is the echo of our own report or a drag is on.
    const changed = !same(z, inst.prevDataZ);
    inst.prevDataZ = z;
    if (changed && !same(z, inst.lastSent) && !inst.dragging) {
      inst.z = Float64Array.from(z);
      setSliders();
      inst.schedule(performance.now());
    }
  };
  return inst;
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const reg = vaeRegistry();
  // Streamlit calls this again on every data change with the same parentElement: keep one
  // instance (and its event listeners) per mounted element.
  let inst = parentElement.__vaeLiveInstance;
  if (!inst) {
    inst = createInstance(parentElement, reg);
    parentElement.__vaeLiveInstance = inst;
  }
  inst.report = (z) => setTriggerValue("z", z);
  if (data) inst.update(data);
  return () => {  // Streamlit runs this when the element unmounts
    window.removeEventListener("pointerup", inst.onPointerUp);
    const i = reg.instances.indexOf(inst);
    if (i >= 0) reg.instances.splice(i, 1);
  };
}
"""

_DECODER_CSS = r"""
.vl { display: flex; flex-wrap: wrap; gap: 12px 28px; align-items: flex-start;
      font-family: var(--st-font, sans-serif); color: var(--st-text-color, #222); }
.vl-view { display: flex; flex-direction: column; align-items: flex-start; gap: 6px; }
.vl-canvas { image-rendering: pixelated; border: 1px solid var(--st-border-color, #ccc);
             border-radius: 4px; background: #000; }
.vl-status { font-size: 0.8rem; opacity: 0.65; }
.vl-sliders { flex: 1 1 300px; display: grid; gap: 0 24px; align-content: start;
              grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); }
.vl-row { display: grid; grid-template-columns: 2.6em 1fr 3.2em; align-items: center; gap: 8px;
          height: 30px; font-size: 0.9rem; }
.vl-row label { font-family: var(--st-code-font, monospace); }
.vl-row input { width: 100%; margin: 0; accent-color: var(--st-primary-color, #ff4b4b); cursor: pointer; }
.vl-row output { text-align: right; font-variant-numeric: tabular-nums; }
"""

_weights_component = st.components.v2.component("vae_live_weights", js=_WEIGHTS_JS)
_decoder_component = st.components.v2.component("vae_live_decoder", css=_DECODER_CSS, js=_DECODER_JS)


def load_weights(payload: LivePayload, key: str) -> None:
    """Send a packed decoder to the browser (once per session: unchanged data is cached)."""
    _weights_component(data=payload.data, key=key, height=0)


def live_decoder(
    payload: LivePayload,
    z,
    key: str,
    span: float = 4.0,
    step: float = 0.05,
    scale: int | None = None,
    labels: list[str] | None = None,
    on_change=None,
) -> list[float] | None:
    """Mount the live decoder for ``payload`` at latent point ``z`` (J,).

    Returns the point (J floats) the user left the sliders at, in the rerun that the end of a
    drag (or a key press) triggers, else None. ``on_change`` is called before that rerun's
    script, like a widget callback; read the point there with :func:`reported_z`."""
    h, w = payload.header["image_shape"]
    J = payload.header["z_dim"]
    z = [float(v) for v in z]
    if len(z) != J:
        raise ValueError(f"live_decoder: {payload.header.get('name') or 'model'} has a {J}-D latent, got {len(z)} values")
    data = {
        "model_id": payload.model_id,
        "z": z,
        "span": float(span),
        "step": float(step),
        "scale": int(scale or max(1, min(12, 280 // max(h, w)))),
        "image_shape": [h, w],
        "labels": labels or [f"z{j}" for j in range(J)],
    }
    load_weights(payload, key=f"{key}.weights.{payload.model_id}")
    res = _decoder_component(data=data, key=key, on_z_change=on_change or (lambda: None))
    z_new = getattr(res, "z", None)
    return [float(v) for v in z_new] if z_new is not None else None


def reported_z(key: str) -> list[float] | None:
    """Inside ``on_change``: the point the browser just reported for component ``key``."""
    v = st.session_state.get(key)
    z = v.get("z") if hasattr(v, "get") else None
    return [float(x) for x in z] if z is not None else None
