"""The server as shipped: it listens on loopback only, and several app processes over the same
checkpoints serve their sessions independently (what a load balancer with sticky sessions needs;
README "Serving many users"). Everything stays on 127.0.0.1: the tests read the server's
listening sockets from /proc, they never connect to another address."""

from __future__ import annotations

import contextlib
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests import procfs
from tests.app_server import IMG, PANEL, ROOT, serve, wait_images, wait_tab
from tests.explorer_fixtures import make_checkpoint

linux_only = pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="reads /proc/PID/net/tcp")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ckpts")
    make_checkpoint(d / "mnist-z2.safetensors", "mnist", 2, n_test=200, hidden=(16,))
    return d


def test_shipped_config():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "localhost"
    assert cfg["server"]["fileWatcherType"] == "none"  # the watcher walked .venv under load
    assert cfg["runner"]["postScriptGC"] is False  # a full collection after every rerun of every user


@linux_only
def test_the_shipped_config_listens_on_loopback_only(tiny_dir):
    """``streamlit run`` with only the port on the command line (the README's command): every
    socket the server listens on is a loopback address."""
    with serve(tiny_dir, shipped_config=True) as url:
        port = urlparse(url).port
        pid = procfs.child_pid_with_arg(str(port))
        sockets = procfs.listening_sockets(pid)
        assert (port in {p for _, p in sockets}), sockets
        assert all(procfs.is_loopback(addr) for addr, _ in sockets), f"listens beyond this machine: {sockets}"


def _wait_mapped(pid: int, lib: str, timeout: float = 60.0) -> None:
    """Wait until the process ``pid`` has mapped a file whose path holds ``lib`` (an imported
    extension module's shared library)."""
    deadline = time.monotonic() + timeout
    while lib not in Path(f"/proc/{pid}/maps").read_text():
        assert time.monotonic() < deadline, f"no {lib} in the server {timeout:.0f} s on"
        time.sleep(0.1)


@linux_only
def test_the_server_imports_the_page_before_any_page_is_asked_for(tiny_dir):
    """The README's command starts the page's imports (torch first) as the server starts
    (streamlit_app.py, views/preload.py): a first visitor does not wait for them. Nothing but the
    health check is requested; the server process maps libtorch into memory on its own."""
    with serve(tiny_dir, shipped_config=True) as url:
        _wait_mapped(procfs.child_pid_with_arg(str(urlparse(url).port)), "libtorch_cpu")


@linux_only
@pytest.mark.slow
def test_the_other_tabs_modules_are_imported_once_a_first_page_is_drawn(tiny_dir, browser):
    """The modules only the other tabs need (scikit-learn among them) are imported by the
    start-up thread after the first page, not before it (they would slow it down), so the
    first tab a user opens next does not wait for them."""
    with serve(tiny_dir, shipped_config=True) as url:
        pid = procfs.child_pid_with_arg(str(urlparse(url).port))
        _wait_mapped(pid, "libtorch_cpu")
        assert "sklearn" not in Path(f"/proc/{pid}/maps").read_text()
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(url)
            wait_images(page)
            _wait_mapped(pid, "sklearn")
        finally:
            page.close()


@pytest.mark.slow
def test_sessions_arriving_together_at_a_cold_server_all_draw(tiny_dir, browser):
    """Four sessions ask a just-started server for the page at once, while its start-up thread
    is still importing: each waits for that thread (none imports torch beside it) and draws."""
    with serve(tiny_dir, shipped_config=True) as url, contextlib.ExitStack() as stack:
        pages = []
        for _ in range(4):
            ctx = browser.new_context(viewport={"width": 1200, "height": 900})
            stack.callback(ctx.close)
            pages.append(ctx.new_page())
        for page in pages:
            page.goto(url, wait_until="commit")
        for page in pages:
            wait_images(page, timeout=60_000)
            assert page.locator('[data-testid="stException"]').count() == 0


def _folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _slider_value(page) -> str:
    return page.locator(f'{PANEL} [data-testid="stSliderThumbValue"]').first.inner_text()


def _nudge(page) -> None:
    """Move the first slider of the open tab one step right and wait for the new image."""
    before = page.locator(f"{PANEL} {IMG}").first.get_attribute("src")
    page.locator(f'{PANEL} [data-testid="stSlider"] input[type="range"]').first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "([sel, old]) => { const i = document.querySelector(sel); return i && i.src !== old && i.complete; }",
        arg=[f"{PANEL} {IMG}", before], timeout=30_000)


@pytest.mark.slow
def test_two_app_processes_serve_sessions_independently(tiny_dir, browser):
    """Two processes over one checkpoint folder, as behind a load balancer. Each keeps its own
    sessions: a slider moved on one is not moved on the other; an image one process serves is
    unknown to the other (so a balancer must keep a browser on one process: sticky sessions);
    stopping one leaves the other's sessions working; neither writes to the shared folder.
    Its own two servers (they are what it tests); the session's browser (tests/conftest.py)."""
    before = _folder_state(tiny_dir)
    with contextlib.ExitStack() as stack:
        server_a = stack.enter_context(contextlib.ExitStack())
        url_a = server_a.enter_context(serve(tiny_dir))
        url_b = stack.enter_context(serve(tiny_dir))
        contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in "ab"]
        stack.callback(lambda: [c.close() for c in contexts])
        page_a, page_b = (c.new_page() for c in contexts)
        for page, url in ((page_a, url_a), (page_b, url_b)):
            page.goto(url)
            wait_images(page)  # the manifold grid
        n = _slider_value(page_a)  # the grid size, the grid tab's first slider
        assert _slider_value(page_b) == n
        _nudge(page_a)  # A's grid is now one image wider, B's is not
        assert int(_slider_value(page_a)) == int(n) + 1 and _slider_value(page_b) == n
        # A's grid is a file in A's memory: B has never heard of it.
        media = urlparse(page_a.locator(f"{PANEL} {IMG}").first.get_attribute("src")).path
        assert media.startswith("/media/") and media.endswith(".png")
        assert _status(url_a + media) == 200 and _status(url_b + media) == 404

        for page in (page_a, page_b):
            page.locator('[data-testid="stTab"]', has_text="Sliders").first.click()
            wait_tab(page, "Sliders")
        _nudge(page_a)
        assert _slider_value(page_a) == "0.05" and _slider_value(page_b) == "0.00"

        server_a.close()  # stop process A: B's session carries on
        _nudge(page_b)
        assert _slider_value(page_b) == "0.05"
        assert not page_b.locator('[data-testid="stException"]').count()
    assert _folder_state(tiny_dir) == before
