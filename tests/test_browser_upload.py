"""Uploads in a real browser (Debian chromium, app on 127.0.0.1): a phone photograph of a digit on
unevenly lit paper shows every preprocessing step and its encoding; a broken file's error stays on
the Encode tab and leaves the other tabs working. Screenshots go to the test's tmp folder.
Server, browser and page: tests/conftest.py."""

from __future__ import annotations

import pytest

from tests import photos
from tests.app_server import IMG, open_tab, wait_idle, wait_images
from views import state

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = pytest.mark.slow  # (conftest marks every browser test slow anyway)
UPLOAD = '[data-testid="stFileUploaderDropzoneInput"]'
PROBLEMS = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def _upload(app_url, browser_checkpoints, page, path):
    """Open the app on its default (MNIST) model, upload ``path`` on the Encode tab; its panel."""
    page.set_viewport_size({"width": 1400, "height": 1100})
    page.goto(f"{app_url}/?model={browser_checkpoints.names[0]}")
    wait_images(page)
    panel = open_tab(page, "Encode an upload")
    panel.locator(UPLOAD).set_input_files(str(path))
    return panel


def test_photograph_shows_every_step_and_its_encoding(app_url, browser_checkpoints, page, tmp_path):
    shot = tmp_path / "digit-on-paper.jpg"
    shot.write_bytes(photos.scene("gradient paper")[0])
    panel = _upload(app_url, browser_checkpoints, page, shot)
    panel.get_by_text("model input | reconstruction").wait_for(timeout=30_000)
    wait_images(panel, 8)  # 7 steps, input | reconstruction, neighbours
    captions = panel.locator('[data-testid="stImageCaption"]').all_inner_texts()
    for title in ("Grayscale", "Paper lighting", "Inverted", "Ink found", "Cropped to ink", "Scaled to 20 px",
                  "Centred in 28x28"):
        assert any(c.startswith(title) for c in captions), (title, captions)
    # The button comes after the images in the page; expect() retries until the rerun has sent it.
    expect(panel.get_by_role("button", name=state.USE_AS_CURRENT)).to_have_count(1, timeout=30_000)
    wait_idle(page)
    expect(page.locator(PROBLEMS)).to_have_count(0)
    page.screenshot(path=str(tmp_path / "encode-photo.png"))


def test_broken_file_error_stays_on_its_tab(app_url, browser_checkpoints, page, tmp_path):
    """A truncated animated GIF (it used to raise IndexError in every tab that reads the upload)."""
    from tests.test_upload_fuzz import valid_files

    gif = valid_files()["gif-animated"]
    bad = tmp_path / "broken.gif"
    bad.write_bytes(gif[: len(gif) // 2])
    _upload(app_url, browser_checkpoints, page, bad)
    err = page.locator('[data-testid="stAlertContentError"]')
    err.first.wait_for(timeout=30_000)
    assert "broken.gif" in err.first.inner_text() and page.locator('[data-testid="stException"]').count() == 0
    for tab in ("Sliders", "Map"):  # these tabs mark the upload; a bad one must leave them alone
        panel = open_tab(page, tab)
        if tab == "Sliders":
            wait_images(panel)
        # expect() retries: the Encode tab's error may linger in the page until the rerun has finished
        # (seen once in ~10 runs on a loaded machine); one that stays for 10 s is the app's.
        expect(page.locator(PROBLEMS)).to_have_count(0, timeout=10_000)
    open_tab(page, "Encode an upload")  # coming back: the error is still explained where it belongs
    err.first.wait_for(timeout=30_000)
    assert page.locator(IMG).count() == 0 or "broken.gif" in err.first.inner_text()
