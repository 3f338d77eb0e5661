"""The Directions tab in a real browser (Debian chromium, app on 127.0.0.1): open it on a Frey
Face model, move the smile amount slider and see the result image change; save a screenshot
(to docs/screenshots/directions-frey.png on the shipped checkpoints, else to a tmp folder)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from explorer import models
from tests.app_server import CHROMIUM, CHROMIUM_ARGS, IMG, ROOT, open_tab, serve, wait_idle, wait_images
from tests.explorer_fixtures import make_checkpoint
from trainer.directions import store_directions, unit

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM), reason=f"no {CHROMIUM}"),
]
SHOTS = ROOT / "docs" / "screenshots"


def _shipped_frey() -> str | None:
    """Name of a shipped Frey Face checkpoint that carries a smile direction, else None."""
    for e in models.discover(models.REPO_ROOT / "checkpoints"):
        if e.ok and e.dataset == "frey":
            ck, _ = models.load(e.path)
            if ck is not None and "direction.smile.mean_difference" in ck.arrays and not models.check_arrays(ck):
                return e.name
    return None


def test_move_smile_slider(tmp_path):
    from playwright.sync_api import sync_playwright

    name = _shipped_frey()
    if name:
        folder, shots = models.REPO_ROOT / "checkpoints", SHOTS
    else:
        folder, shots, name = tmp_path, tmp_path, "frey-z3"
        path = make_checkpoint(tmp_path / "frey-z3.safetensors", "frey", 3, n_test=100, hidden=(32,))
        g = np.random.default_rng(0)
        store_directions(path, {"smile.mean_difference": unit(g.standard_normal(3)).astype(np.float32)},
                         {"smile": {"mean_difference": {"label": "Smile", "kind": "binary", "spread": 1.0,
                                                        "quality": {"accuracy": 0.8, "auc": 0.9, "majority": 0.75}}}})
    with serve(folder) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(f"{url}/?model={name}")
        wait_idle(page, 60_000)
        open_tab(page, "Directions")
        wait_images(page, 3, 60_000)
        assert page.get_by_text("Smile (mean difference): amount").count() == 1
        result = page.locator(IMG).nth(1)
        before = result.get_attribute("src")
        slider = page.locator('[data-testid="stSlider"]', has_text="Smile (mean difference)").locator(
            'input[type="range"]')
        slider.focus()
        for _ in range(5):
            page.keyboard.press("ArrowRight")
        page.wait_for_function("([sel, old]) => { const i = document.querySelectorAll(sel)[1];"
                               " return i && i.src !== old && i.complete && i.naturalWidth > 0; }",
                               arg=[IMG, before], timeout=30_000)
        wait_idle(page)
        assert page.locator('[data-testid="stSliderThumbValue"]', has_text="2.00").count() >= 1
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "directions-frey.png"), full_page=True)
        browser.close()
