"""Shared pytest fixtures. Keep this small: fixtures used by several test files only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: real-data or long-running tests (CI runs them too)")


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
