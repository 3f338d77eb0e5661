"""The Likelihood tab in a real browser (Debian chromium, app on 127.0.0.1): open it, wait for the
estimates, the latent plane (2-D models) and the stored table, and screenshot the whole tab into
the test's tmp folder: ``likelihood.png`` (the first MNIST model; mnist-z2 when the shipped
checkpoints are here) and ``likelihood-<model>.png`` for the other models shown."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from explorer import models
from tests.app_server import CHROMIUM, CHROMIUM_ARGS, open_tab, serve, wait_idle
from tests.explorer_fixtures import make_checkpoint

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM), reason=f"no {CHROMIUM}"),
]
PLOT = '[data-testid="stPlotlyChart"] .js-plotly-plot'


def _models(tmp_path: Path) -> tuple[Path, list[str]]:
    """The shipped checkpoints (mnist-z2, mnist-z20, frey-z2 where present), else tiny ones."""
    shipped = {e.name for e in models.discover(models.REPO_ROOT / "checkpoints") if e.ok}
    want = [n for n in ("mnist-z2", "mnist-z20", "frey-z2") if n in shipped]
    if want:
        return models.REPO_ROOT / "checkpoints", want
    make_checkpoint(tmp_path / "mnist-z2.safetensors", "mnist", 2, n_test=60, hidden=(32,))
    make_checkpoint(tmp_path / "frey-z3.safetensors", "frey", 3, n_test=20, hidden=(32,))
    return tmp_path, ["mnist-z2", "frey-z3"]


def _whole_tab(page, path: Path) -> None:
    """Screenshot the whole tab: Streamlit scrolls inside its main panel, so grow the viewport."""
    h = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], int(h) + 40)})
    page.wait_for_timeout(800)  # plotly re-lays out on resize
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


def test_likelihood_tab(tmp_path):
    from playwright.sync_api import sync_playwright

    folder, names = _models(tmp_path)
    shots = tmp_path / "shots"
    shots.mkdir()
    with serve(folder) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for i, name in enumerate(names):
            page.goto(f"{url}/?model={name}")
            wait_idle(page, 60_000)
            open_tab(page, "Likelihood")
            page.get_by_text("estimates of log p(x)").first.wait_for(timeout=90_000)
            wait_idle(page, 60_000)
            page.get_by_text("Test set, every shipped model").wait_for(timeout=30_000)
            assert page.locator(PLOT).count() >= 2
            if name.endswith("z2"):
                page.get_by_text("zoom on the posterior").first.wait_for(timeout=30_000)
            assert not page.locator('[data-testid="stException"]').count()
            _whole_tab(page, shots / ("likelihood.png" if i == 0 else f"likelihood-{name}.png"))
        browser.close()
    assert (shots / "likelihood.png").stat().st_size > 10_000
    print(f"screenshots in {shots}")
