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

import logging
import threading
import time
from collections.abc import Callable

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_thread: threading.Thread | None = None
took_s: float | None = None  # how long the start-up work took, once it has finished


def _run(work: Callable[[], None]) -> None:
    global took_s
    t0 = time.perf_counter()
    try:
        work()
    except BaseException:  # the page imports (or loads) it again and shows the error to the user
        _log.exception("the server's start-up work failed")
        return
    took_s = time.perf_counter() - t0


def start(work: Callable[[], None]) -> threading.Thread:
    """Run ``work`` (the page's imports, and whatever else every first page needs) in a
    background thread, once per process; later calls return the thread of the first."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_run, args=(work,), name="app-preload", daemon=True)
            _thread.start()
        return _thread


def wait() -> None:
    """Return once the start-up work has finished (at once if none were started, as under
    AppTest, or when called from the start-up thread itself, whose imports include the caller)."""
    with _lock:
        t = _thread
    if t is not None and t is not threading.current_thread():
        t.join()
