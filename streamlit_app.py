"""VAE Latent Explorer: ``streamlit run streamlit_app.py``.

This file starts the server; the page every session runs is ``app_page.py`` (tabs in
``views/``, everything computed in ``explorer/``). Checkpoints come from ``$VAE_CHECKPOINT_DIR``
(default ``checkpoints/``); original dataset images, when shown, from ``$VAE_DATA_DIR``
(optional). Every ``streamlit run`` option and ``.streamlit/config.toml`` setting applies as usual.

Why a launcher: ``streamlit run`` serves a module-level ``st.App`` through its ``lifespan``,
which runs once, as the server starts. There the page's imports (torch, the explorer, the views:
about a second on a 2-core machine) and model loads start in the background, so they overlap
the browser fetching Streamlit's own page instead of delaying the first image (views/preload.py).
"""

from __future__ import annotations

import webbrowser
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import streamlit as st

from views import preload

PAGE = "app_page.py"


def open_browser() -> None:
    """Open the app in the user's browser, as a plain ``streamlit run`` does, unless the server
    is headless (the default where there is no display, and in every test)."""
    if st.get_option("server.headless"):
        return
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    url = f"http://{st.get_option('browser.serverAddress')}:{st.get_option('server.port')}/{base}"
    webbrowser.open(url.rstrip("/"))


def warm_up() -> None:
    """What every first page waits for, done once per server in the background: the page's
    imports, and the default folder's checkpoints loaded into the shared model cache."""
    import app_page

    app_page.warm_up()


def warm_up_later() -> None:
    """Once the first page can be drawn: the modules only the other tabs import (pandas, scipy,
    scikit-learn: about 0.6 s), under views.context's import lock, so the first tab a user
    opens after the first finds them imported."""
    from views.context import import_shared_modules

    import_shared_modules()


@asynccontextmanager
async def lifespan(_app: st.App) -> AsyncIterator[None]:
    """Server start: begin the page's imports and model loads, then open the browser."""
    preload.start(warm_up, later=warm_up_later)
    open_browser()
    yield


app = st.App(PAGE, lifespan=lifespan)
