"""The Directions tab in a real browser (Debian chromium, app on 127.0.0.1): open it on a Frey
Face model, move the smile amount slider and see the result image change; save a screenshot
(to a temporary folder; to docs/screenshots/directions-frey.png with ``pytest --refresh-screenshots``).
Server, browser and page: tests/conftest.py."""

from __future__ import annotations

import pytest

from explorer import models
from tests.app_server import IMG, open_tab, wait_idle, wait_images

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = pytest.mark.slow  # (conftest marks every browser test slow anyway)


def _frey_with_smile(folder) -> str:
    """Name of the first Frey Face checkpoint in ``folder`` that carries a smile direction."""
    for e in models.display_order(models.discover(folder)):
        if e.ok and e.dataset == "frey":
            ck, _ = models.load(e.path)
            if ck is not None and "direction.smile.mean_difference" in ck.arrays:
                return e.name
    raise AssertionError(f"no Frey Face checkpoint with a smile direction in {folder}")


def test_move_smile_slider(app_url, browser_checkpoints, page, screenshot):
    name = _frey_with_smile(browser_checkpoints.folder)
    page.set_viewport_size({"width": 1400, "height": 1100})
    page.goto(f"{app_url}/?model={name}")
    wait_idle(page, 60_000)
    panel = open_tab(page, "Directions")
    wait_images(panel, 3, 60_000)
    expect(panel.get_by_text("Smile (mean difference): amount")).to_have_count(1)
    result = panel.locator(IMG).nth(1)
    before = result.get_attribute("src")
    slider = panel.locator('[data-testid="stSlider"]', has_text="Smile (mean difference)")
    slider.locator('input[type="range"]').focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    expect(slider.locator('[data-testid="stSliderThumbValue"]')).to_have_text("2.00", timeout=30_000)
    expect(result).not_to_have_attribute("src", before, timeout=30_000)
    wait_images(panel, 3)
    screenshot(page, "directions-frey")
