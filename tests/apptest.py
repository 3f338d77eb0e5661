"""Running the whole app under Streamlit's AppTest over a folder of checkpoints (the AppTest
modules share it)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from explorer import models

APP = str(Path(__file__).resolve().parent.parent / "app_page.py")


def run_app(folder: Path, monkeypatch, model: str | None = None) -> AppTest:
    """The app's first run over the checkpoints in ``folder``, with ``model`` chosen if given."""
    monkeypatch.setenv(models.CHECKPOINT_DIR_ENV, str(folder))
    at = AppTest.from_file(APP, default_timeout=60)
    if model:
        at.session_state["model"] = model
    return at.run()
