"""Serving the app on 127.0.0.1 and driving Debian's chromium, for the browser test and the
browser benchmark (``bench/browser_latency.py``). Never `playwright install`."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
IMG = '[data-testid="stImage"] img'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(checkpoint_dir: Path, port: int | None = None, timeout: float = 60.0):
    """Run ``streamlit run streamlit_app.py`` on loopback; yields the base URL."""
    port = port or free_port()
    env = dict(os.environ, VAE_CHECKPOINT_DIR=str(checkpoint_dir))
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                raise RuntimeError(f"streamlit did not start on {url}:\n{out[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_images(page, n: int = 1, timeout: float = 30_000) -> None:
    """Wait until at least ``n`` st.image images are loaded."""
    page.wait_for_function(
        """([sel, n]) => { const ims = [...document.querySelectorAll(sel)];
             return ims.length >= n && ims.every(i => i.complete && i.naturalWidth > 0); }""",
        arg=[IMG, n], timeout=timeout, polling="raf",
    )


def wait_idle(page, timeout: float = 30_000) -> None:
    """Wait until the app is not running a script (the status widget is gone)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout, polling=100
    )


def open_tab(page, label: str) -> None:
    page.locator('[data-testid="stTab"]', has_text=label).first.click()
    page.wait_for_timeout(300)
    wait_idle(page)


# In-page timing of "key press on a slider -> decoded image replaced and loaded", in ms.
# Arm it with page.evaluate(ARM_SLIDER_TIMER, IMG), press a key, then page.evaluate("window.__lat").
ARM_SLIDER_TIMER = """
(sel) => { window.__lat = new Promise((resolve) => {
  let t0 = null, done = false;
  const old = document.querySelector(sel)?.src;
  document.addEventListener('keydown', () => { if (t0 === null) t0 = performance.now(); }, {capture: true, once: true});
  const check = () => {
    const img = document.querySelector(sel);
    if (!done && t0 !== null && img && img.src !== old && img.complete && img.naturalWidth > 0) {
      done = true; obs.disconnect(); resolve(performance.now() - t0); }
  };
  const obs = new MutationObserver(() => {
    const img = document.querySelector(sel);
    if (img && img.src !== old) { check(); img.addEventListener('load', check, {once: true}); }
  });
  obs.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}); return true; }
"""
