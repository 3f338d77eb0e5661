"""The app in a real browser (Debian chromium driven by playwright, app on 127.0.0.1): load,
switch model, move a slider and see the image change, upload a PNG and see the encoding,
box-select points on the map. Saves a screenshot of each view (to a temporary folder; to
docs/screenshots/ with ``pytest --refresh-screenshots``). Server, browser and page: tests/conftest.py."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.app_server import IMG, open_tab, wait_idle, wait_images

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = pytest.mark.slow  # (conftest marks every browser test slow anyway)


def _digit_png() -> bytes:
    a = np.full((140, 100), 255, np.uint8)
    a[20:120, 45:58] = 0
    a[20:34, 30:58] = 0
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def test_browser_walkthrough(app_url, browser_checkpoints, page, screenshot, tmp_path):
    """One user's tour of every tab in one page, in order (long on purpose: each step starts from
    the state the previous one left, as in a real session, and takes the README's screenshots)."""
    names = browser_checkpoints.names
    mnist = names[0]  # the app's default model
    page.goto(f"{app_url}/?model={mnist}")
    wait_images(page)  # the manifold grid, the first tab
    assert page.locator('[data-testid="stTab"]').count() >= 6
    screenshot(page, "manifold-grid")

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

    # sliders: a key press moves z0 and the decoded image changes. Everything is looked up in
    # the open tab's panel, and each step waits for its own condition (expect() retries), so an
    # image another tab left behind during the rerun is never taken for the slider's.
    panel = open_tab(page, "Sliders")
    slider = panel.locator('[data-testid="stSlider"]', has_text="z0")
    value = slider.locator('[data-testid="stSliderThumbValue"]')
    expect(value).to_have_text("0.00", timeout=20_000)
    image = panel.locator(IMG).first
    wait_images(panel)
    before = image.get_attribute("src")
    slider.locator('input[type="range"]').focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    expect(value).to_have_text("0.50", timeout=20_000)
    expect(image).not_to_have_attribute("src", before, timeout=20_000)
    wait_images(panel)
    screenshot(page, "sliders")

    # upload a PNG: preprocessing steps, reconstruction, neighbours
    panel = open_tab(page, "Encode an upload")
    png = tmp_path / "digit.png"
    png.write_bytes(_digit_png())
    panel.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(png))
    panel.get_by_text("model input | reconstruction").wait_for(timeout=30_000)
    wait_images(panel, 8)
    expect(panel.get_by_text("Use as the current point")).to_have_count(1)
    screenshot(page, "encode-upload")

    # map: box-select the middle of the plot and see reconstructions of the selected points
    panel = open_tab(page, "Map")
    plot = panel.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first
    plot.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    plot.hover()
    panel.locator('.modebar-btn[data-title="Box Select"]').first.click()
    box = panel.locator('[data-testid="stPlotlyChart"] .nsewdrag').first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 120, cy - 120)
    page.mouse.down()
    page.mouse.move(cx, cy, steps=5)
    page.mouse.move(cx + 120, cy + 120, steps=5)
    page.mouse.up()
    panel.get_by_text(" selected").first.wait_for(timeout=30_000)
    wait_images(panel, 1)
    screenshot(page, "map")

    wait_images(open_tab(page, "Interpolate"))
    screenshot(page, "interpolate")
    wait_images(open_tab(page, "Model card"))
    screenshot(page, "model-card")
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
