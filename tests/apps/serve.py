"""Serve a Streamlit page on loopback and drive it with Debian's chromium (browser tests, bench).

Never ``playwright install``: python playwright drives ``/usr/bin/chromium``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def browser_missing() -> str | None:
    """Why a browser test cannot run here (None when it can)."""
    if not Path(CHROMIUM).exists():
        return f"no {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "python playwright is not installed"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(app: str | os.PathLike, env: dict[str, str] | None = None, timeout: float = 60.0,
                     shipped_config: bool = False) -> Iterator[str]:
    """Run ``streamlit run app`` on a free loopback port; yield its URL once ``/_stcore/health``
    answers ``ok``; stop it on exit. Raises RuntimeError with the server's log if it never does.
    ``shipped_config``: only the port and headless mode are set on the command line, everything
    else (listening address, file watcher) comes from the repository's .streamlit/config.toml.
    The repo root is on the server's ``PYTHONPATH``, so an app anywhere in the tree imports the
    project's packages (streamlit itself puts only the app's own folder on ``sys.path``)."""
    port = free_port()
    exe = shutil.which("streamlit", path=str(Path(sys.executable).parent)) or "streamlit"
    cmd = [exe, "run", str(app), "--server.headless", "true", "--server.port", str(port)]
    if not shipped_config:
        cmd += ["--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
                "--server.fileWatcherType", "none"]
    # The log goes to a file, not a pipe: a pipe nobody reads would block a chatty server.
    log = tempfile.TemporaryFile(mode="w+")
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": pythonpath, **(env or {})},
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"streamlit exited early ({proc.returncode}):\n{log.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def launch(p):
    """A headless chromium from a ``sync_playwright()`` handle."""
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# A canvas sampler installed by tests: on every animation frame it hashes the live decoder's
# canvas pixels (read back with getImageData), independent of the component's own counters.
SAMPLER_JS = """() => {
  let c = null;
  for (const h of document.querySelectorAll('[data-testid^=stBidiComponent]')) {
    const root = h.shadowRoot || h;
    c = root.querySelector('canvas.vl-canvas');
    if (c) break;
  }
  if (!c) throw new Error('no live decoder canvas on the page');
  const g = c.getContext('2d', { willReadFrequently: true });
  window.__samples = [];
  window.__sampling = true;
  const tick = () => {
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let h = 2166136261;
    for (let i = 0; i < d.length; i += 4) { h ^= d[i]; h = Math.imul(h, 16777619) >>> 0; }
    window.__samples.push([performance.now(), h]);
    if (window.__sampling) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""
