"""Start-up work (views/preload.py) and the launcher (streamlit_app.py): the server imports the
page's modules and loads the checkpoints as it starts, in one background thread, and a page
waits for that instead of importing beside it. The served path is in tests/test_server.py."""

from __future__ import annotations

import gc
import logging
import threading
from pathlib import Path

import pytest
import streamlit as st
from streamlit.web.server.app_discovery import discover_asgi_app

from tests.explorer_fixtures import make_checkpoint
from views import preload

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh(monkeypatch):
    """views.preload as in a process that has started nothing yet."""
    monkeypatch.setattr(preload, "_thread", None)
    monkeypatch.setattr(preload, "took_s", None)
    monkeypatch.setattr(preload, "_ready", threading.Event())
    monkeypatch.setattr(preload, "_drawn", threading.Event())
    monkeypatch.setattr(preload, "LATER_DELAY_S", 0.0)
    frozen = []
    monkeypatch.setattr(preload.gc, "freeze", lambda: frozen.append(True))  # keep pytest's heap as it is
    monkeypatch.setattr(preload, "frozen", frozen, raising=False)  # what the tests read
    return preload


def test_wait_returns_at_once_when_nothing_was_started(fresh):
    fresh.wait()  # AppTest, or `streamlit run app_page.py`: no launcher, nothing to wait for
    assert fresh.took_s is None


def test_wait_blocks_until_the_work_is_done_and_it_runs_once(fresh):
    release, calls = threading.Event(), []

    def work():
        calls.append(threading.current_thread().name)
        release.wait(10)

    t = fresh.start(work)
    assert fresh.start(work) is t  # a second start (another lifespan) adds nothing
    waiter = threading.Thread(target=fresh.wait)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive(), "wait() returned while the start-up work was still running"
    release.set()
    waiter.join(10)
    assert not waiter.is_alive() and calls == ["app-preload"] and fresh.took_s is not None


def test_pages_wait_for_the_work_and_the_later_work_waits_for_a_page(fresh, caplog):
    done = []

    def later():
        done.append("later")
        raise ImportError("no module named 'sklearn'")

    with caplog.at_level(logging.ERROR, logger="views.preload"):
        t = fresh.start(lambda: done.append("work"), later=later)
        fresh.wait()
        t.join(0.3)
        assert done == ["work"] and t.is_alive()  # no page drawn yet: the later imports wait
        fresh.page_drawn()
        t.join(10)
    assert done == ["work", "later"] and "later start-up work failed" in caplog.text


def test_wait_from_the_work_itself_does_not_deadlock(fresh):
    """The start-up thread imports app_page, whose top calls wait()."""
    t = fresh.start(fresh.wait)
    t.join(10)
    assert not t.is_alive() and fresh.took_s is not None


@pytest.mark.parametrize("fails", [False, True])
def test_the_collector_pauses_for_the_work_and_what_it_built_is_frozen(fresh, fails):
    seen = []

    def work():
        seen.append(gc.isenabled())
        if fails:
            raise RuntimeError("broken checkpoint folder")

    assert gc.isenabled()
    fresh.start(work).join(10)
    assert seen == [False] and gc.isenabled() and fresh.frozen == [True]


def test_failed_work_is_logged_and_waiters_go_on(fresh, caplog):
    def work():
        raise ImportError("no module named 'torch'")

    with caplog.at_level(logging.ERROR, logger="views.preload"):
        fresh.start(work).join(10)
        fresh.wait()
    assert "start-up work failed" in caplog.text and "no module named 'torch'" in caplog.text
    assert fresh.took_s is None  # the page imports again and shows the user the real error


def test_streamlit_run_serves_the_launchers_app():
    """``streamlit run streamlit_app.py`` (the README's command) finds the st.App and serves
    app_page.py through it."""
    found = discover_asgi_app(ROOT / "streamlit_app.py")
    assert found.is_asgi_app and found.import_string == "streamlit_app:app"
    import streamlit_app

    assert (ROOT / streamlit_app.PAGE).is_file() and streamlit_app.app.script_path == Path(streamlit_app.PAGE)


@pytest.mark.parametrize("headless", [True, False])
def test_the_browser_opens_as_with_a_plain_streamlit_run(monkeypatch, headless):
    import streamlit_app

    options = {"server.headless": headless, "server.baseUrlPath": "", "browser.serverAddress": "localhost",
               "server.port": 8765}
    monkeypatch.setattr(st, "get_option", options.__getitem__)
    opened = []
    monkeypatch.setattr(streamlit_app.webbrowser, "open", opened.append)
    streamlit_app.open_browser()
    assert opened == ([] if headless else ["http://localhost:8765"])


def test_warm_up_fills_the_model_cache(tmp_path, monkeypatch):
    """After the start-up work, the first page's checkpoint loads are cache hits: loading from
    disk now fails, yet every checkpoint is there; a broken file is skipped, not fatal."""
    import app_page
    from explorer import models
    from views.context import load_model

    for name in ("mnist-z2", "mnist-z5"):
        make_checkpoint(tmp_path / f"{name}.safetensors", "mnist", int(name[-1]), n_test=50, hidden=(8,))
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 10)
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(tmp_path))
    load_model.clear()
    try:
        app_page.warm_up()
        monkeypatch.setattr(models, "load", lambda path: pytest.fail(f"{path} loaded again"))
        entries = [e for e in models.discover(tmp_path) if not e.error]
        assert sorted(e.name for e in entries) == ["mnist-z2", "mnist-z5"]
        for e in entries:
            ck, err = load_model(str(e.path), e.mtime)
            assert err is None and ck.model is not None
    finally:
        load_model.clear()
