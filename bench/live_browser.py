"""Live decoder and drawing pad, measured in a real browser (headless Debian chromium).

    .venv/bin/python -m bench.live_browser [--model NAME] [--ckpt-dir DIR] [--screenshots]

Serves ``streamlit_app.py`` on loopback and, for the largest checkpoint (most decoder
weights) unless ``--model`` names one:

- a scripted drag of one latent slider across its whole range (mouse down, small moves,
  mouse up): frames painted per second while the drag lasts, and the time from an input
  event to the end of the paint that answers it (median and 95th percentile; the browser's
  own event timestamps). Playwright's mouse delivers a move every 15-25 ms here, so this
  rate is bounded by the input; a second sweep dispatches input events in the page at
  250 Hz, faster than the display, to show the display-bound frame rate;
- the drawing pad: from the end of a stroke (pointer up) to the updated reconstruction
  image in the page, over several strokes (median);
- page weight: the packed decoder's bytes, and the websocket bytes the page received to
  open the Live tab and after one slider release (the weights are not sent again).

``--screenshots`` also writes docs/screenshots/live_decoder.png and drawing_pad.png.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

from explorer import models
from explorer.live_decoder import decoder_layers, pack_decoder
from tests.apps.serve import REPO, browser_missing, launch, streamlit_server

APP = REPO / "streamlit_app.py"


def _pick(folder: Path, name: str | None):
    entries = [e for e in models.discover(folder) if e.ok]
    if not entries:
        sys.exit(f"no usable checkpoints in {folder}")
    if name:
        match = [e for e in entries if e.name == name]
        if not match:
            sys.exit(f"--model {name}: not among {[e.name for e in entries]}")
        return match[0]
    sizes = {}
    for e in entries:
        ck, _ = models.load(e.path)
        sizes[e.name] = sum(p.numel() for p in ck.model.decoder.parameters()) + ck.model.fc_out.weight.numel()
    return max(entries, key=lambda e: sizes[e.name])


def _wait_painted(pg) -> None:
    pg.wait_for_function(
        "() => window.__vaeLive && window.__vaeLive.instances.some(i => i.stats.frames > 0)", timeout=120_000
    )


def drag(pg, moves: int = 240, reverse: bool = False) -> dict:
    """Drag slider z0 from one end of its range to the other in ``moves`` mouse moves (left to
    right, or right to left when ``reverse``)."""
    slider = pg.locator('input[type="range"][data-dim="0"]')
    box = slider.bounding_box()
    y, x0, x1 = box["y"] + box["height"] / 2, box["x"] + 2, box["x"] + box["width"] - 2
    if reverse:
        x0, x1 = x1, x0
    pg.mouse.move(x0, y)
    pg.mouse.down()
    pg.wait_for_timeout(100)
    before = pg.evaluate("() => { const s = window.__vaeLive.instances.at(-1).stats; "
                         "return {frames: s.frames, n: s.latencies.length, inputs: s.inputs, t: performance.now()}; }")
    pg.mouse.move(x1, y, steps=moves)
    pg.wait_for_timeout(50)
    after = pg.evaluate("() => { const s = window.__vaeLive.instances.at(-1).stats; "
                        "return {frames: s.frames, inputs: s.inputs, lat: s.latencies, dec: s.decodeMs, "
                        "at: s.paintAt}; }")
    pg.mouse.up()
    n_new = after["frames"] - before["frames"]
    paints = after["at"][-n_new:]
    lat = after["lat"][-n_new:]
    dec = after["dec"][-n_new:]
    span_s = (paints[-1] - paints[0]) / 1000 if len(paints) > 1 else float("nan")
    gaps = [b - a for a, b in zip(paints, paints[1:])]
    return {
        "inputs": after["inputs"] - before["inputs"], "frames": n_new,
        "fps": (n_new - 1) / span_s if span_s > 0 else float("nan"),
        "gap_median": statistics.median(gaps) if gaps else float("nan"),
        "lat_median": statistics.median(lat), "lat_p95": sorted(lat)[int(0.95 * (len(lat) - 1))],
        "decode_median": statistics.median(dec), "seconds": span_s,
    }


_SYNTHETIC_JS = """async ([hz, ms]) => {
  const inst = window.__vaeLive.instances.at(-1);
  let input = null;
  for (const h of document.querySelectorAll('[data-testid^=stBidiComponent]')) {
    input = (h.shadowRoot || h).querySelector('input[data-dim="0"]');
    if (input) break;
  }
  const lo = +input.min, hi = +input.max, s = inst.stats;
  const f0 = s.frames, i0 = s.inputs;
  const t0 = performance.now();
  await new Promise((done) => {
    const id = setInterval(() => {
      const t = performance.now() - t0;
      if (t > ms) { clearInterval(id); done(); return; }
      input.value = String(lo + (hi - lo) * t / ms);
      input.dispatchEvent(new Event('input', { bubbles: true }));
    }, 1000 / hz);
  });
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const n = s.frames - f0;
  return { inputs: s.inputs - i0, frames: n, lat: s.latencies.slice(-n), dec: s.decodeMs.slice(-n),
           at: s.paintAt.slice(-n) };
}"""


def synthetic(pg, hz: int = 250, ms: int = 2000) -> dict:
    """Input events dispatched in the page at ``hz`` (faster than the display) on slider z0,
    sweeping its range in ``ms``: the same handler a drag runs, without the mouse's rate limit."""
    r = pg.evaluate(_SYNTHETIC_JS, [hz, ms])
    paints, lat = r["at"], r["lat"]
    span_s = (paints[-1] - paints[0]) / 1000
    gaps = [b - a for a, b in zip(paints, paints[1:])]
    return {
        "inputs": r["inputs"], "frames": r["frames"], "fps": (len(paints) - 1) / span_s,
        "gap_median": statistics.median(gaps), "lat_median": statistics.median(lat),
        "lat_p95": sorted(lat)[int(0.95 * (len(lat) - 1))], "decode_median": statistics.median(r["dec"]),
        "seconds": span_s,
    }


_NEW_RECON_JS = """(old) => new Promise((resolve) => {
  const check = () => {
    const im = document.querySelector('[data-testid="stImage"] img');
    if (im && im.src !== old && im.complete && im.naturalWidth > 0) resolve(performance.now());
    else requestAnimationFrame(check);
  };
  check();
})"""


def draw_strokes(pg, n: int = 6) -> list[float]:
    """Draw ``n`` strokes (pieces of a "0", then of an "8"); ms from each pointer-up to the new
    reconstruction image being loaded in the page."""
    pad = pg.locator("canvas.pad-canvas")
    pad.wait_for(timeout=120_000)
    box = pad.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    rx, ry = 0.22 * box["width"], 0.32 * box["height"]
    out = []
    for k in range(n):
        a0 = 2 * math.pi * k / n
        pts = [(cx + rx * math.sin(a0 + t * 2 * math.pi / n / 12), cy - ry * math.cos(a0 + t * 2 * math.pi / n / 12))
               for t in range(13)]
        old = pg.evaluate("() => { const im = document.querySelector('[data-testid=\"stImage\"] img'); "
                          "return im ? im.src : null; }")
        pg.mouse.move(*pts[0])
        pg.mouse.down()
        for p in pts[1:]:
            pg.mouse.move(*p)
        pg.mouse.up()
        done = pg.evaluate(_NEW_RECON_JS, old)
        sent = pg.evaluate("() => window.__vaePadLastSend")
        out.append(done - sent)
        pg.wait_for_timeout(300)
    return out


def _rows(name, ck, payload, moves, d, syn, strokes, load_bytes, release_bytes) -> list[tuple[str, str, str]]:
    """The results table: (measure, value, note) rows from the drags ``d``, the synthetic sweeps
    ``syn``, the pad's stroke latencies and the websocket byte counts."""
    widths = [str(ck.config.z_dim)] + [str(lin.out_features) for _, lin, _ in decoder_layers(ck.model)]
    med = lambda k: statistics.median(x[k] for x in d)  # noqa: E731
    smed = lambda k: statistics.median(x[k] for x in syn)  # noqa: E731
    return [
        ("model", name, "decoder " + " -> ".join(widths)),
        ("mouse drag: input events / painted frames (per drag)", f"{med('inputs'):.0f} / {med('frames'):.0f}",
         f"{moves} mouse moves, median of {len(d)} drags"),
        ("mouse drag: frames painted per second", f"{med('fps'):.1f}",
         "input-bound; median frame gap " + f"{med('gap_median'):.1f} ms"),
        ("mouse drag: input event to painted canvas, median", f"{med('lat_median'):.1f} ms",
         f"aim < 16 ms; p95 {med('lat_p95'):.1f} ms"),
        ("decode + paint per frame, median (mouse drag)", f"{med('decode_median'):.2f} ms",
         "JavaScript, Float32Array weights"),
        ("synthetic 250 Hz input: events / painted frames", f"{smed('inputs'):.0f} / {smed('frames'):.0f}",
         f"2 s sweep of z0, median of {len(syn)}"),
        ("synthetic 250 Hz input: frames painted per second", f"{smed('fps'):.1f}",
         f"aim >= 50 (display-bound); median frame gap {smed('gap_median'):.1f} ms"),
        ("synthetic 250 Hz input: oldest unpainted event to painted canvas, median", f"{smed('lat_median'):.1f} ms",
         f"aim < 16 ms; p95 {smed('lat_p95'):.1f} ms (includes the wait for the next frame)"),
        ("drawing pad: stroke end to new reconstruction, median", f"{statistics.median(strokes):.0f} ms",
         f"aim < 300 ms; {len(strokes)} strokes, max {max(strokes):.0f} ms"),
        ("payload: the decoder as safetensors", f"{payload.n_bytes:,} B", "float32 weights + JSON header, raw bytes"),
        ("websocket bytes to open the Live tab", f"{load_bytes:,} B", "whole page: app, sidebar, weights"),
        ("websocket bytes for one slider release (rerun)", f"{release_bytes:,} B",
         "weights not resent (message cache)"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt-dir", type=Path, default=models.default_checkpoint_dir())
    ap.add_argument("--model", default=None, help="checkpoint name (default: the largest decoder)")
    ap.add_argument("--screenshots", action="store_true",
                    help="write docs/screenshots/live_decoder.png, drawing_pad.png")
    ap.add_argument("--moves", type=int, default=240, help="mouse moves in the scripted drag")
    args = ap.parse_args()
    why = browser_missing()
    if why:
        sys.exit(f"cannot run: {why}")
    entry = _pick(args.ckpt_dir, args.model)
    ck, err = models.load(entry.path)
    payload = pack_decoder(ck.model, entry.name)
    from playwright.sync_api import sync_playwright

    with streamlit_server(APP, env={"VAE_CHECKPOINT_DIR": str(args.ckpt_dir)}) as url, sync_playwright() as p:
        browser = launch(p)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        ws_bytes = [0]
        pg.on("websocket", lambda ws: ws.on("framereceived", lambda f: ws_bytes.__setitem__(0, ws_bytes[0] + len(f))))
        pg.goto(f"{url}/?model={entry.name}&view=Live")
        _wait_painted(pg)
        pg.wait_for_timeout(1000)
        load_bytes = ws_bytes[0]
        # Warm-up drag (JIT), then the measured ones, alternating direction so each one ends
        # at a new point (a drag that ends where it began fires no "change" and reports nothing).
        drag(pg, moves=60)
        pg.wait_for_timeout(1500)
        ws_bytes[0] = 0
        d = [drag(pg, moves=args.moves, reverse=True)]
        pg.wait_for_timeout(2000)  # the release's rerun arrives
        release_bytes = ws_bytes[0]
        for i in range(2):
            d.append(drag(pg, moves=args.moves, reverse=i == 1))
            pg.wait_for_timeout(1500)
        syn = [synthetic(pg) for _ in range(3)]
        if args.screenshots:
            out = REPO / "docs" / "screenshots"
            out.mkdir(parents=True, exist_ok=True)
            pg.locator('input[type="range"][data-dim="0"]').fill("1.5")
            pg.locator('input[type="range"][data-dim="1"]').fill("-0.8")
            pg.wait_for_timeout(1500)
            pg.screenshot(path=str(out / "live_decoder.png"))
        pg.goto(f"{url}/?model={entry.name}&view=Draw")
        strokes = draw_strokes(pg)
        if args.screenshots:
            # Streamlit scrolls inside the page, so "full page" is the viewport: make it tall
            # enough for the map under the pad.
            pg.set_viewport_size({"width": 1400, "height": 1300})
            pg.wait_for_timeout(2500)
            pg.screenshot(path=str(REPO / "docs" / "screenshots" / "drawing_pad.png"))
        browser.close()

    rows = _rows(entry.name, ck, payload, args.moves, d, syn, strokes, load_bytes, release_bytes)
    print("| measure | value | note |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
