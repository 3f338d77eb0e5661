"""The Likelihood tab in a real browser (Debian chromium, app on 127.0.0.1): open it, wait for the
estimates, the latent plane (2-D models) and the stored table, and screenshot the whole tab:
``likelihood.png`` (the first MNIST model; mnist-z2 when the shipped checkpoints are here) where
the ``screenshot`` fixture saves (docs/screenshots/ with ``--refresh-screenshots``), and
``likelihood-<model>.png`` for the other models shown into the test's tmp folder. Server, browser
and page: tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app_server import open_tab, wait_idle

pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # (conftest marks every browser test slow anyway)
PLOT = '[data-testid="stPlotlyChart"] .js-plotly-plot'


def _models(browser_checkpoints) -> list[str]:
    """mnist-z2, mnist-z20 and frey-z2 of the shipped checkpoints; mnist-z2 and frey-z10 of the tiny ones."""
    want = ("mnist-z2", "mnist-z20", "frey-z2") if browser_checkpoints.shipped else ("mnist-z2", "frey-z10")
    return [n for n in want if n in browser_checkpoints.names]


def _whole_tab(page, path: Path) -> None:
    """Screenshot the whole tab: Streamlit scrolls inside its main panel, so grow the viewport."""
    h = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], int(h) + 40)})
    page.wait_for_timeout(800)  # plotly re-lays out on resize
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


def test_likelihood_tab(app_url, browser_checkpoints, page, screenshot, tmp_path, shared_data_dir):
    """Estimates for a test image need the dataset: skipped where there is none (without one the
    tab still estimates uploads: tests/test_app_likelihood.py::test_upload)."""
    names = _models(browser_checkpoints)
    shots = tmp_path / "shots"
    shots.mkdir()
    for i, name in enumerate(names):
        page.goto(f"{app_url}/?model={name}")
        wait_idle(page, 60_000)
        open_tab(page, "Likelihood")
        page.get_by_text("estimates of log p(x)").first.wait_for(timeout=90_000)
        wait_idle(page, 60_000)
        page.get_by_text("Test set, every shipped VAE").wait_for(timeout=30_000)
        assert page.locator(PLOT).count() >= 2
        if name.endswith("z2"):
            page.get_by_text("zoom on the posterior").first.wait_for(timeout=30_000)
        assert not page.locator('[data-testid="stException"]').count()
        _whole_tab(page, screenshot.folder / "likelihood.png" if i == 0 else shots / f"likelihood-{name}.png")
    assert (screenshot.folder / "likelihood.png").stat().st_size > 10_000
    print(f"screenshots in {shots}")
