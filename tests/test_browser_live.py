"""Real-browser tests of the live decoder and the drawing pad (chromium + python playwright).

The component tests use tests/apps/live_app.py (the Live tab and the drawing pad alone); the
Live -> Sliders test runs the real app (streamlit_app.py). Both are served once for the session
over the shared browser checkpoints; servers, browser and page: tests/conftest.py.
"""

from __future__ import annotations

import base64
import io
import math
import time

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.live_decoder import pack_decoder
from tests.apps.serve import SAMPLER_JS
from trainer.checkpoint import list_checkpoints, load_checkpoint, read_metadata

pytestmark = pytest.mark.slow  # (conftest marks every browser test slow anyway)


def _models(ckpt_dir):
    """(name, z_dim, dataset) of every VAE checkpoint, by name (the tests move sliders over the
    prior's +-4 SD and press "Reset to origin": an autoencoder's sliders span its codes instead)."""
    out = []
    for p in list_checkpoints(ckpt_dir):
        config, meta = read_metadata(p)
        if not config.has_prior:
            continue
        out.append((str(meta.get("name") or p.stem), config.z_dim, str(meta.get("dataset", ""))))
    return out


def _wait_painted(pg, timeout=60_000):
    pg.wait_for_function(
        "() => window.__vaeLive && window.__vaeLive.instances.some(i => i.stats.frames > 0)", timeout=timeout
    )


def test_drag_repaints_during_the_drag_and_python_gets_the_final_z(live_app_url, browser_checkpoints, page):
    name, J, _ = max(_models(browser_checkpoints.folder), key=lambda m: m[1])
    page.goto(f"{live_app_url}/?model={name}")
    _wait_painted(page)
    slider = page.locator('input[type="range"][data-dim="0"]')
    box = slider.bounding_box()
    y, x_mid = box["y"] + box["height"] / 2, box["x"] + box["width"] / 2
    page.evaluate(SAMPLER_JS)
    page.mouse.move(x_mid, y)
    page.mouse.down()
    for i in range(1, 31):  # to the right end of the range, in 30 moves
        page.mouse.move(x_mid + (box["width"] / 2 + 10) * i / 30, y)
    t_up = page.evaluate("() => performance.now()")
    page.mouse.up()
    page.wait_for_timeout(200)
    samples = page.evaluate("() => { window.__sampling = false; return window.__samples; }")
    before_up = [h for t, h in samples if t < t_up]
    changes = sum(a != b for a, b in zip(before_up, before_up[1:]))
    assert changes >= 5, f"canvas changed {changes} times during the drag (samples: {len(before_up)})"
    # Python heard the end of the drag: the page prints its current point, z0 at the top of the range.
    code = page.locator('[data-testid="stCode"]')
    page.wait_for_function(
        "() => { const c = document.querySelector('[data-testid=stCode]'); "
        "return c && c.innerText.trim().startsWith('4.00'); }",
        timeout=20_000,
    )
    values = [float(v) for v in code.inner_text().split()]
    assert len(values) == J and values[0] == 4.0 and all(v == 0.0 for v in values[1:])
    # ... and a Python-side change moves the browser's sliders back.
    page.get_by_role("button", name="Reset to origin").click()
    deadline = time.monotonic() + 20
    while float(slider.input_value()) != 0.0 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert float(slider.input_value()) == 0.0

@pytest.mark.slow  # loads every checkpoint, in the test and in the page
def test_two_quick_edits_keep_both(live_app_url, browser_checkpoints, page):
    """Two slider edits in quick succession send two reports; Python's answer to the first (an
    echo of it) arrives after the second edit and must not undo it: the sliders, the image and
    Python's point all end at both edits (the echo once reset the second slider while Python
    kept its value)."""
    name, J, _ = max(_models(browser_checkpoints.folder), key=lambda m: m[1])
    page.goto(f"{live_app_url}/?model={name}")
    _wait_painted(page)
    page.locator('input[type="range"][data-dim="0"]').fill("1.5")
    page.locator('input[type="range"][data-dim="1"]').fill("-0.8")  # before the first rerun returns
    page.wait_for_function(
        "() => { const c = document.querySelector('[data-testid=stCode]'); "
        "return c && c.innerText.trim().split(/\\s+/).slice(0, 2).join(' ') === '1.50 -0.80'; }",
        timeout=20_000,
    )
    page.wait_for_timeout(1500)  # any late rerun has arrived
    values = [float(page.locator(f'input[type="range"][data-dim="{j}"]').input_value()) for j in range(2)]
    assert values == [1.5, -0.8]


def test_browser_decoder_matches_torch(live_app_url, browser_checkpoints, page):
    paths = list_checkpoints(browser_checkpoints.folder)
    for i in range(0, len(paths), 4):  # the page keeps at most 8 decoders (MAX_MODELS in live_component.js)
        _decoders_match_torch(live_app_url, page, [load_checkpoint(p) for p in paths[i:i + 4]])


def _decoders_match_torch(live_app_url, page, cks) -> None:
    ids = [pack_decoder(ck.model).model_id for ck in cks]
    page.goto(f"{live_app_url}/?all=1&only={','.join(ck.path.stem for ck in cks)}")
    page.wait_for_function(f"() => window.__vaeLive && {ids!r}.every(id => window.__vaeLive.models.has(id))",
                           timeout=90_000)
    for ck, model_id in zip(cks, ids):
        g = torch.Generator().manual_seed(0)
        z = torch.randn(50, ck.config.z_dim, generator=g) * 2.0  # well beyond the prior's bulk too
        want = ck.model.decode(z).numpy()
        got = np.asarray(page.evaluate("([zs, id]) => zs.map(z => window.__vaeDecode(z, id))", [z.tolist(), model_id]),
                         dtype=np.float32)
        assert got.shape == want.shape
        err = float(np.abs(got - want).max())
        assert err < 1e-4, f"{ck.path.name}: browser decoder differs from torch by {err:.2e}"


def test_drawing_a_stroke_shows_an_encoding(live_app_url, browser_checkpoints, page):
    models = _models(browser_checkpoints.folder)
    name = next((m[0] for m in models if m[2] == "mnist"), models[0][0])
    page.goto(f"{live_app_url}/?view=draw&model={name}")
    pad = page.locator("canvas.pad-canvas")
    pad.wait_for(timeout=60_000)
    assert page.get_by_text("model input | reconstruction").count() == 0
    box = pad.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    pts = [(cx + 0.2 * box["width"] * math.sin(t * math.pi / 20), cy - 0.3 * box["height"] * math.cos(t * math.pi / 20))
           for t in range(41)]  # a "0"
    page.mouse.move(*pts[0])
    page.mouse.down()
    for p in pts[1:]:
        page.mouse.move(*p)
    page.mouse.up()
    page.get_by_text("model input | reconstruction").wait_for(timeout=20_000)
    page.locator("text.gtitle", has_text="q(z|drawing)").wait_for(timeout=20_000)  # the mu +- sigma chart
    # The button that sends the encoding to the rest of the app is there too.
    assert page.get_by_role("button", name="Use as the current point").count() == 1


def _current_point_caption(pg) -> str:
    return pg.get_by_text("App's current point: ").inner_text()


@pytest.mark.slow
def test_live_then_sliders_shows_the_current_point(app_url, browser_checkpoints, page):
    """The reported sequence: Sliders opened once, the point moved off the origin on Live
    (prior sample), a Live slider dragged, then Sliders again: its sliders must show the Live
    point (they once all showed -4.00) and its image must be that point decoded."""
    from playwright.sync_api import expect

    name, J, _ = min((m for m in _models(browser_checkpoints.folder) if m[1] >= 5), key=lambda m: m[1])
    page.goto(f"{app_url}/?model={name}&view=Sliders")
    thumbs = page.locator('[data-testid="stSliderThumbValue"]')
    expect(thumbs).to_have_count(J, timeout=60_000)
    page.locator('[data-testid="stTab"]', has_text="Live").first.click()
    _wait_painted(page)
    before = _current_point_caption(page)
    page.get_by_role("button", name="Random prior sample").click()
    expect(page.get_by_text("App's current point: ")).not_to_have_text(before, timeout=20_000)
    slider = page.locator('input[type="range"][data-dim="0"]')
    box = slider.bounding_box()
    y, x0 = box["y"] + box["height"] / 2, box["x"] + box["width"] * 0.5
    after_random = _current_point_caption(page)
    page.mouse.move(x0, y)
    page.mouse.down()
    for i in range(1, 11):  # a real drag to about +3 SD
        page.mouse.move(x0 + box["width"] * 0.37 * i / 10, y)
    page.mouse.up()
    expect(page.get_by_text("App's current point: ")).not_to_have_text(after_random, timeout=20_000)
    z = [float(page.locator(f'input[type="range"][data-dim="{j}"]').input_value()) for j in range(J)]
    assert z[0] > 2.0 and any(v != 0.0 for v in z[1:])  # off the origin, and the drag moved z0

    page.locator('[data-testid="stTab"]', has_text="Sliders").first.click()
    expect(thumbs).to_have_text([f"{v:.2f}" for v in z], timeout=20_000)
    img = page.locator('[data-testid="stImage"] img')
    expect(img).to_have_count(1, timeout=20_000)
    png = base64.b64decode(img.get_attribute("src").split(",", 1)[1])
    shown = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32) / 255
    ck = load_checkpoint(next(p for p in list_checkpoints(browser_checkpoints.folder) if p.stem == name))
    want = ck.model.decode(torch.tensor([z])).reshape(ck.config.image_shape).numpy()
    f = shown.shape[0] // want.shape[0]
    assert shown.shape == (want.shape[0] * f, want.shape[1] * f)
    assert np.abs(shown[::f, ::f] - want).max() <= 1.5 / 255  # the Live point decoded, up to 8-bit rounding
