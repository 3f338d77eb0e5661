"""The Compare tab in a real browser (Debian chromium, app on 127.0.0.1): the three maps, the
decoded draws, the table and the claims render; a screenshot of the whole tab, compare.png,
goes to the test's tmp folder (to docs/screenshots/ with ``pytest --refresh-screenshots`` on
the shipped checkpoints). The page (the session's chromium): tests/conftest.py; the server is
this test's own, over the shipped 2-D VAE, AE and DAE or tiny ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from explorer import compare_store, models
from tests.app_server import IMG, ROOT, serve, wait_idle, wait_images
from tests.explorer_fixtures import make_checkpoint
from trainer.checkpoint import load_checkpoint

pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # (conftest marks every browser test slow anyway)
SHIPPED = models.REPO_ROOT / "checkpoints"
TRIO = ("mnist-z2", "mnist-ae-z2", "mnist-dae-z2")


def _folder(tmp_path: Path) -> tuple[Path, bool]:
    """The shipped checkpoints when their 2-D trio and its stored figures are there, else tiny ones."""
    if all((SHIPPED / f"{n}.safetensors").exists() for n in TRIO) and compare_store.store_path(SHIPPED).exists():
        return SHIPPED, True
    d = tmp_path / "ckpts"
    d.mkdir()
    x = np.random.default_rng(0).random((300, 28, 28)).astype(np.float32)
    entries = {}
    for n, kind in zip(TRIO, ("vae", "ae", "dae")):
        path = make_checkpoint(d / f"{n}.safetensors", "mnist", 2, kind=kind, n_test=300, hidden=(32,))
        entries[n] = compare_store.measure(load_checkpoint(path), x, None)
    compare_store.write(d / compare_store.FILE_NAME, compare_store.Stored(models=entries, ideal={}, classifier={}))
    return d, False


def _whole_tab_screenshot(page, path: Path) -> None:
    """Streamlit scrolls inside its main panel: grow the viewport to the content, shoot, restore."""
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": int(height) + 40})
    page.wait_for_timeout(800)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def test_compare_tab_in_a_browser(page, tmp_path, request):
    folder, shipped = _folder(tmp_path)
    with serve(folder) as url:
        page.goto(f"{url}/?view=Compare")
        wait_images(page, 3, timeout=60_000)
        page.wait_for_selector('[data-testid="stPlotlyChart"] .js-plotly-plot', timeout=60_000)
        wait_idle(page)
        body = page.inner_text('[data-testid="stMain"]')
        for text in ("Measured figures", "kNN digit accuracy", "The lecture notes' claims", *TRIO):
            assert text in body, text
        assert body.count("N(0, I)") >= 3
        assert len(page.query_selector_all(IMG)) == 3
        shot = tmp_path / "compare.png"
        _whole_tab_screenshot(page, shot)
    assert shot.stat().st_size > 20_000
    if shipped and request.config.getoption("--refresh-screenshots", default=False):
        (ROOT / "docs" / "screenshots").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "screenshots" / "compare.png")
