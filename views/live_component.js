// The live decoder's browser side (see views/live_component.py). One module serves both
// components: "vae_live_weights" gets a decoder as safetensors bytes and files it in the
// registry on window.__vaeLive; "vae_live_decoder" gets small JSON (model id, z, slider
// range) and draws the sliders and the canvas. The default export tells them apart by data.

const MAX_MODELS = 8;  // decoders kept in memory; the oldest is dropped beyond this

// A minimal safetensors reader: an 8-byte little-endian header length, a JSON header
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}), then the data.
function readSafetensors(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (u8.byteLength < 8) throw new Error("vae live payload: shorter than a safetensors header");
  const n = Number(new DataView(u8.buffer, u8.byteOffset, 8).getBigUint64(0, true));
  if (8 + n > u8.byteLength) throw new Error("vae live payload: header runs past the end");
  const header = JSON.parse(new TextDecoder().decode(u8.subarray(8, 8 + n)));
  const meta = header.__metadata__ || {};
  delete header.__metadata__;
  return { u8, header, meta, start: 8 + n };
}

function liveHeader(st) {
  if (!st.meta.vae_live) throw new Error("vae live payload: no vae_live metadata");
  return JSON.parse(st.meta.vae_live);
}

// float32 values of one tensor, copied into an own (aligned) buffer.
function tensor(st, name) {
  const t = st.header[name];
  if (!t || t.dtype !== "F32") throw new Error(`vae live payload: no float32 tensor ${name}`);
  const [b, e] = t.data_offsets;
  if (st.start + e > st.u8.byteLength) throw new Error(`vae live payload: ${name} runs past the end`);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) {
    return new Float32Array(st.u8.slice(st.start + b, st.start + e).buffer);
  }
  const dv = new DataView(st.u8.buffer, st.u8.byteOffset + st.start + b, e - b);  // big-endian host
  const w = new Float32Array((e - b) / 4);
  for (let i = 0; i < w.length; i++) w[i] = dv.getFloat32(4 * i, true);
  return w;
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

function parsePayload(st) {
  const h = liveHeader(st);
  const layers = h.layers.map(([prefix, act]) => {
    const W = tensor(st, prefix + ".weight");
    const [nout, nin] = st.header[prefix + ".weight"].shape;
    return {
      nin, nout, W, b: tensor(st, prefix + ".bias"), act: activation(act),
      y: new Float64Array(nout),  // scratch; float64 like torch's float32 but with less rounding
    };
  });
  const xDim = h.image_shape[0] * h.image_shape[1];
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
  return { id: h.id, header: h, zDim: h.z_dim, shape: h.image_shape, xDim, decode, bytes: st.u8.byteLength };
}

function vaeRegistry() {
  if (window.__vaeLive) return window.__vaeLive;
  const r = {
    models: new Map(),
    waiters: new Map(),
    instances: [],
    add(bytes) {
      const st = readSafetensors(bytes);
      const id = liveHeader(st).id;
      let m = r.models.get(id);
      if (!m) {
        m = parsePayload(st);
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
    modelId: null, model: null, z: null, prevDataZ: null, sent: [], dragging: false,
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

  // lo/hi (optional, one per dimension): an autoencoder's sliders span its codes' range.
  function build(n, span, step, labels, lo, hi) {
    box.innerHTML = "";
    inst.inputs = []; inst.outputs = [];
    for (let j = 0; j < n; j++) {
      const row = document.createElement("div");
      row.className = "vl-row";
      const min = lo ? lo[j] : -span, max = hi ? hi[j] : span;
      row.innerHTML = `<label>${labels[j]}</label><input type="range" min="${min}" max="${max}" step="${step}">` +
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
        const z = Array.from(inst.z);
        // Every report not yet echoed back by Python: two quick edits send two, and the echo
        // of the first must not undo the second (it would show a point Python no longer has).
        inst.sent.push(z);
        if (inst.sent.length > 16) inst.sent.shift();
        if (inst.report) inst.report(z);
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
      inst.sent = [];
      build(z.length, data.span, data.step, data.labels, data.lo, data.hi);
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
    // Python sent a point: follow it unless it echoes one of our own reports (then drop that
    // report and the older ones: Python has them) or a drag is on.
    const changed = !same(z, inst.prevDataZ);
    inst.prevDataZ = z;
    const echo = inst.sent.findIndex((s) => same(z, s));
    if (echo >= 0) inst.sent.splice(0, echo + 1);
    if (changed && echo < 0 && !inst.dragging) {
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
  // The weights carrier: its data is the safetensors bytes, nothing to draw.
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) { reg.add(data); return; }
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
