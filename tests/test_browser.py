"""The app in a real browser (Debian chromium driven by playwright, app on 127.0.0.1): load,
switch model, move a slider and see the image change, upload a PNG and see the encoding,
box-select points on the map. Saves a screenshot of each view: to docs/screenshots/ when
it runs on the shipped checkpoints, else to the test's tmp folder."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explorer import models
from tests.app_server import CHROMIUM, CHROMIUM_ARGS, IMG, ROOT, open_tab, serve, wait_idle, wait_images
from tests.explorer_fixtures import make_checkpoint

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM), reason=f"no {CHROMIUM}"),
]
SHOTS = ROOT / "docs" / "screenshots"


def _shipped_ready() -> list[models.ModelEntry]:
    """The shipped checkpoints if every one loads and carries the app's arrays, else []."""
    entries = models.discover(models.REPO_ROOT / "checkpoints")
    for e in entries:
        ck, _ = models.load(e.path) if e.ok else (None, None)
        if ck is None or models.check_arrays(ck):
            return []
    return entries


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    shipped = _shipped_ready()
    if shipped:
        return models.REPO_ROOT / "checkpoints", SHOTS, [e.name for e in models.display_order(shipped)]
    d = tmp_path_factory.mktemp("browser-ckpts")
    make_checkpoint(d / "mnist-z2.safetensors", "mnist", 2, n_test=500, hidden=(32,))
    make_checkpoint(d / "frey-z3.safetensors", "frey", 3, n_test=100, hidden=(32,))
    return d, tmp_path_factory.mktemp("shots"), ["mnist-z2", "frey-z3"]


@pytest.fixture(scope="module")
def page(setup):
    folder, _, _ = setup
    from playwright.sync_api import sync_playwright

    with serve(folder) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.base_url = url
        yield pg
        browser.close()


def _digit_png() -> bytes:
    a = np.full((140, 100), 255, np.uint8)
    a[20:120, 45:58] = 0
    a[20:34, 30:58] = 0
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _shot(page, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    wait_idle(page)
    page.wait_for_timeout(500)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_browser_walkthrough(page, setup, tmp_path):
    folder, shots, names = setup
    mnist = names[0]  # the app's default model
    page.goto(page.base_url + f"/?model={mnist}")
    wait_images(page)  # the manifold grid, the first tab
    assert page.locator('[data-testid="stTab"]').count() >= 6
    _shot(page, shots, "manifold-grid")

    # switch model in the sidebar; the choice goes into the URL
    other = next(n for n in names if n != mnist)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name=other, exact=True).click()
    page.wait_for_function(f"() => location.search.includes('model={other}')", timeout=20_000)
    wait_idle(page)
    wait_images(page)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name=mnist, exact=True).click()
    # the default model is dropped from the URL (Streamlit keeps bound URLs clean)
    page.wait_for_function("() => !location.search.includes('model=')", timeout=20_000)
    wait_idle(page)

    # sliders: a key press moves z0 and the decoded image changes
    open_tab(page, "Sliders")
    z0 = page.locator('[data-testid="stSlider"]', has_text="z0")  # not a slider the last tab left behind
    z0.wait_for(timeout=20_000)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=stSlider]').length == 2", timeout=20_000)
    wait_images(page)
    before = page.locator(IMG).first.get_attribute("src")
    z0.locator('input[type="range"]').focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "([sel, old]) => { const i = document.querySelector(sel); return i && i.src !== old && i.complete; }",
        arg=[IMG, before], timeout=20_000,
    )
    assert "0.50" in page.locator('[data-testid="stSliderThumbValue"]').first.inner_text()
    _shot(page, shots, "sliders")

    # upload a PNG: preprocessing steps, reconstruction, neighbours
    open_tab(page, "Encode an upload")
    png = tmp_path / "digit.png"
    png.write_bytes(_digit_png())
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(png))
    page.get_by_text("model input | reconstruction").wait_for(timeout=30_000)
    wait_images(page, 8)
    assert page.get_by_text("Use as the current point").count() == 1
    _shot(page, shots, "encode-upload")

    # map: box-select the middle of the plot and see reconstructions of the selected points
    open_tab(page, "Map")
    plot = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first
    plot.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    plot.hover()
    page.locator('.modebar-btn[data-title="Box Select"]').first.click()
    box = page.locator('[data-testid="stPlotlyChart"] .nsewdrag').first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 120, cy - 120)
    page.mouse.down()
    page.mouse.move(cx, cy, steps=5)
    page.mouse.move(cx + 120, cy + 120, steps=5)
    page.mouse.up()
    page.get_by_text(" selected").first.wait_for(timeout=30_000)
    wait_images(page, 1)
    _shot(page, shots, "map")

    open_tab(page, "Interpolate")
    wait_images(page)
    _shot(page, shots, "interpolate")
    open_tab(page, "Model card")
    wait_images(page)
    _shot(page, shots, "model-card")
    assert not page.locator('[data-testid="stException"]').count()
