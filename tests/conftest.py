"""Shared pytest fixtures and hooks: fixtures used by several test files only.

Data
    ``shared_data_dir`` (session): the datasets folder; tests that need it skip when it is absent.
    ``VAE_CACHE_DIR`` (autouse, session): a temporary folder, so that image-folder caches
        (trainer.folder_cache) never land in the user's ~/.cache.

Real-browser tests (Debian's /usr/bin/chromium driven by python playwright; helpers in
tests/app_server.py). One server per app and one browser serve the whole test session; each
test gets its own page. A test that uses any of these fixtures is marked ``slow`` by
:func:`pytest_collection_modifyitems` (so ``-m "not slow"`` skips it) and skips where chromium
or playwright is missing (fails instead when ``$CI`` is set).

    ``browser_checkpoints`` (session): the folder both servers read, with ``.names`` (display
        order: the first is the app's default) and ``.shipped``. The shipped ``checkpoints/``
        when every one loads with the app's arrays and a Frey Face one carries a smile
        direction; else tiny random ones built once (mnist-z2, mnist-z5; mnist-z20 and frey-z10
        of the shipped sizes, frey-z10 with a smile direction).
    ``app_url`` (session): base URL of ``streamlit_app.py`` served on 127.0.0.1 over them.
    ``live_app_url`` (session): the same for ``tests/apps/live_app.py`` (Live tab and drawing pad alone).
    ``browser`` (session): one headless chromium.
    ``page`` (function): a fresh browser context and page (viewport 1400x1000); the test fails
        if the page raised a JavaScript error.
    ``screenshot`` (session): ``screenshot(page, "name")`` saves ``name.png`` once the app is
        idle, into a temporary folder; with ``pytest --refresh-screenshots`` (shipped checkpoints
        only) into docs/screenshots/, which a plain test run never writes.

A new browser test file needs no fixtures of its own::

    from tests.app_server import open_tab, wait_images

    def test_something(app_url, page, screenshot):
        page.goto(f"{app_url}/?model=mnist-z2")
        panel = open_tab(page, "Encode an upload")  # look things up inside the open tab
        wait_images(panel)
        screenshot(page, "encode-upload")
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
BROWSER_FIXTURES = {"browser", "page", "app_url", "live_app_url", "screenshot"}


def pytest_addoption(parser):
    parser.addoption("--refresh-screenshots", action="store_true",
                     help="browser tests write their screenshots to docs/screenshots/ (needs the shipped checkpoints)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: real-data or long-running tests (CI runs them too)")


@pytest.hookimpl(tryfirst=True)  # before the mark plugin deselects by -m
def pytest_collection_modifyitems(config, items):
    """Every test that drives a browser is slow, whatever its file says."""
    for item in items:
        if BROWSER_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The datasets folder: ``$VAE_DATA_DIR`` if set, else ``<project root>/../shared/data``.

    Holds ``mnist/*.gz`` and ``frey/frey_rawface.mat``; tests that need it skip when it is absent.
    """
    env = os.environ.get("VAE_DATA_DIR")
    candidates = ([Path(env).expanduser()] if env else []) + [PROJECT_ROOT.parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    pytest.skip(f"no dataset folder: set VAE_DATA_DIR or provide {candidates[-1]}")


# ---- real-browser tests ----------------------------------------------------------------------


@dataclass(frozen=True)
class BrowserCheckpoints:
    folder: Path
    names: list[str]  # display order; names[0] is the app's default model
    shipped: bool


def _shipped_ready() -> list[str]:
    """Names of the shipped checkpoints (display order) if every one loads and carries the app's
    arrays and a Frey Face one has a smile direction, else []."""
    from explorer import models

    entries = models.discover(PROJECT_ROOT / "checkpoints")
    smile = False
    for e in entries:
        ck, _ = models.load(e.path) if e.ok else (None, None)
        if ck is None or models.check_arrays(ck):
            return []
        smile |= e.dataset == "frey" and "direction.smile.mean_difference" in ck.arrays
    return [e.name for e in models.display_order(entries)] if smile else []


def _build_tiny(folder: Path) -> list[str]:
    """Random checkpoints with the app's arrays: small mnist-z2 and mnist-z5 (J = 5 lays its sliders
    out in one column), and mnist-z20 and frey-z10 with the shipped architectures (so the browser
    decoder meets their sizes and tanh); frey-z10 carries a smile direction for the Directions tab."""
    from tests.explorer_fixtures import make_checkpoint
    from trainer.directions import store_directions, unit

    make_checkpoint(folder / "mnist-z2.safetensors", "mnist", 2, n_test=500, hidden=(32,))
    make_checkpoint(folder / "mnist-z5.safetensors", "mnist", 5, n_test=100, hidden=(32,), seed=3)
    make_checkpoint(folder / "mnist-z20.safetensors", "mnist", 20, n_test=100, hidden=(512, 256), seed=1)
    frey = make_checkpoint(folder / "frey-z10.safetensors", "frey", 10, n_test=100, hidden=(200,), seed=2,
                           activation="tanh")
    g = np.random.default_rng(0)
    store_directions(frey, {"smile.mean_difference": unit(g.standard_normal(10)).astype(np.float32)},
                     {"smile": {"mean_difference": {"label": "Smile", "kind": "binary", "spread": 1.0,
                                                    "quality": {"accuracy": 0.8, "auc": 0.9, "majority": 0.75}}}})
    return ["mnist-z2", "mnist-z5", "mnist-z20", "frey-z10"]


@pytest.fixture(scope="session")
def browser_checkpoints(tmp_path_factory) -> BrowserCheckpoints:
    names = _shipped_ready()
    if names:
        return BrowserCheckpoints(PROJECT_ROOT / "checkpoints", names, True)
    folder = tmp_path_factory.mktemp("browser-checkpoints")
    return BrowserCheckpoints(folder, _build_tiny(folder), False)


@pytest.fixture(scope="session")
def app_url(browser_checkpoints) -> str:
    from tests.app_server import serve

    with serve(browser_checkpoints.folder) as url:
        yield url


@pytest.fixture(scope="session")
def live_app_url(browser_checkpoints) -> str:
    from tests.apps.serve import streamlit_server

    app = PROJECT_ROOT / "tests" / "apps" / "live_app.py"
    with streamlit_server(app, env={"VAE_CHECKPOINT_DIR": str(browser_checkpoints.folder)}) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from tests.apps.serve import browser_missing, launch

    why = browser_missing()
    if why and os.environ.get("CI"):  # .ci/run installs both: a CI run must not pass by skipping them
        pytest.fail(f"browser tests cannot run on CI: {why}")
    if why:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:  # one sync_playwright() may run at a time: hence one per session
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    on a busy 2-core machine two threads wait on each other (recipes.md)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _compact_pngs(folder: Path, since: float) -> None:
    """Re-save the screenshots written since ``since`` with a 256-colour palette: the README's
    pictures are flat UI colours, and every refresh stays in the repository's history for good
    (about half the size of playwright's true-colour PNGs)."""
    from PIL import Image

    for path in folder.glob("*.png"):
        if path.stat().st_mtime >= since:
            with Image.open(path) as im:
                small = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
            small.save(path, optimize=True)


@pytest.fixture(scope="session")
def screenshot(request, browser_checkpoints, tmp_path_factory):
    """``screenshot(page, name)``: wait until the app is idle, then save ``<folder>/<name>.png``
    (a temporary folder, or docs/screenshots/ with ``--refresh-screenshots``); returns the path.
    ``screenshot.folder`` is that folder."""
    from tests.app_server import wait_idle

    refresh = request.config.getoption("--refresh-screenshots")
    if refresh:
        if not browser_checkpoints.shipped:
            pytest.fail("--refresh-screenshots needs the shipped checkpoints in checkpoints/ (with their arrays)")
        folder = SCREENSHOTS
        request.addfinalizer(functools.partial(_compact_pngs, folder, time.time()))
    else:
        folder = tmp_path_factory.mktemp("screenshots")

    def take(pg, name: str) -> Path:
        wait_idle(pg)
        pg.wait_for_timeout(500)  # let charts finish their transitions
        path = folder / f"{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        return path

    take.folder = folder  # for a test that takes its own kind of screenshot (tests/test_browser_likelihood.py)
    return take


@pytest.fixture(autouse=True, scope="session")
def _folder_cache_in_tmp(tmp_path_factory):
    """Training on an image folder decodes it into a cache (trainer.folder_cache): tests, and the
    processes they start, put it in a temporary folder, never in the user's ~/.cache."""
    old = os.environ.get("VAE_CACHE_DIR")
    os.environ["VAE_CACHE_DIR"] = str(tmp_path_factory.mktemp("vae-cache"))
    yield
    if old is None:
        os.environ.pop("VAE_CACHE_DIR", None)
    else:
        os.environ["VAE_CACHE_DIR"] = old
