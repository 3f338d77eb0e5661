"""Import the page's modules when the server starts, not when the first browser asks for a page.

A cold server spends about a second importing torch and the app before it can draw anything
(bench/browser_latency.py). ``streamlit_app.py`` calls :func:`start` as the server comes up, so
those imports run while the browser is still fetching Streamlit's page and scripts (about 0.7 s
here); the page script calls :func:`wait` before its own imports.

Waiting matters: two threads importing the same package at once can deadlock on Python's
per-module import locks, and Python breaks such a cycle by handing one of them a half-initialised
module (issue 9 met it with pandas). So no session imports beside the start-up thread.

Stdlib only: the launcher imports this module before anything heavy.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_thread: threading.Thread | None = None
_ready = threading.Event()  # set once ``work`` is over (done or failed); ``later`` may still run
_drawn = threading.Event()  # set once a page has been drawn (page_drawn)
# ``later`` waits for the first page, so as not to slow it down, but no longer than this; and
# then a little more: the browser is still fetching the page's widget scripts from the server.
LATER_AFTER_S = 30.0
LATER_DELAY_S = 1.0
took_s: float | None = None  # how long ``work`` took, once it has finished without an error


def _run(work: Callable[[], None], later: Callable[[], None] | None) -> None:
    global took_s
    t0 = time.perf_counter()
    # Importing torch and the app allocates hundreds of thousands of objects, none of them
    # garbage, and each full collection meanwhile rescans them all: about 0.25 s of a 1.1 s import
    # here. So the collector pauses (process-wide, for about a second) while the work runs, and
    # what the work built (modules, loaded models: they live as long as the server) is frozen
    # out of every later collection's scan.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        work()
        took_s = time.perf_counter() - t0
    except BaseException:  # the page imports (or loads) it again and shows the error to the user
        _log.exception("the server's start-up work failed")
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
        _ready.set()
    if later is not None:
        _drawn.wait(LATER_AFTER_S)
        time.sleep(LATER_DELAY_S)
        try:
            later()
        except BaseException:
            _log.exception("the server's later start-up work failed")


def start(work: Callable[[], None], later: Callable[[], None] | None = None) -> threading.Thread:
    """Run ``work`` (what every first page needs: its imports, the models), then, once a first
    page is drawn (:func:`page_drawn`), ``later`` (what only some pages need; nobody waits for it,
    so it must guard itself), in one background thread, once per process; later calls return
    the thread of the first."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_run, args=(work, later), name="app-preload", daemon=True)
            _thread.start()
        return _thread


def wait() -> None:
    """Return once the start-up ``work`` is over (at once if none was started, as under AppTest,
    or when called from the start-up thread itself, whose imports include the caller)."""
    with _lock:
        t = _thread
    if t is not None and t is not threading.current_thread():
        _ready.wait()


def page_drawn() -> None:
    """A session has finished a script run: the start-up thread's ``later`` work may begin."""
    _drawn.set()
