// The drawing pad's browser side (see views/drawing_pad.py): a canvas that sends its PNG
// to Python at the end of every stroke.
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
