"""Driving the app (``streamlit_app.py``) in Debian's chromium: serve it on 127.0.0.1, open a
tab, wait for images, for a tab to be drawn or for the app to be idle. Used by the browser tests
(through the fixtures in tests/conftest.py) and the browser benchmarks (``bench/browser_latency.py``,
``bench/load.py``). Never ``playwright install``."""

from __future__ import annotations

from pathlib import Path

# One implementation of "serve on loopback, drive Debian chromium" for every browser test and bench.
from tests.apps.serve import CHROMIUM, CHROMIUM_ARGS, streamlit_server

ROOT = Path(__file__).resolve().parent.parent
IMG = '[data-testid="stImage"] img'
# The open tab's panel: closed tabs keep their last content (hidden, without this role) until
# the next run ends, so a selector meant for the open tab must start with this.
PANEL = '[data-testid="stTabPanel"][role="tabpanel"]'
__all__ = ["ARM_SLIDER_TIMER", "CHROMIUM", "CHROMIUM_ARGS", "IMG", "PANEL", "ROOT", "open_tab", "serve",
           "wait_idle", "wait_images", "wait_tab"]


def serve(checkpoint_dir: Path, timeout: float = 60.0, shipped_config: bool = False):
    """Run the app (``streamlit_app.py``) on a free loopback port over ``checkpoint_dir``;
    a context manager yielding the base URL (``shipped_config``: see ``streamlit_server``)."""
    return streamlit_server(ROOT / "streamlit_app.py", env={"VAE_CHECKPOINT_DIR": str(checkpoint_dir)},
                            timeout=timeout, shipped_config=shipped_config)


def wait_images(scope, n: int = 1, timeout: float = 30_000) -> None:
    """Wait until at least ``n`` st.image images are loaded in ``scope``: a page, or a locator
    such as the open tab's panel (:func:`open_tab`), so that images a closed tab keeps until
    the run ends are not counted."""
    page, root = (scope, None) if hasattr(scope, "goto") else (scope.page, scope.element_handle(timeout=timeout))
    page.wait_for_function(
        """([root, sel, n]) => { const ims = [...(root || document).querySelectorAll(sel)];
             return ims.length >= n && ims.every(i => i.complete && i.naturalWidth > 0); }""",
        arg=[root, IMG, n], timeout=timeout, polling="raf",
    )


# The app's script run state, which Streamlit's page keeps on its root element: "running" from the
# moment a widget asks for a rerun (set in the page, so there is no gap to race), "notRunning" after.
IDLE_JS = """() => { const app = document.querySelector('[data-testid="stApp"]');
  return app && app.dataset.testScriptState === 'notRunning'
         && !document.querySelector('[data-testid="stStatusWidget"]'); }"""


def wait_idle(page, timeout: float = 30_000) -> None:
    """Wait until the app is not running a script and shows no status widget."""
    page.wait_for_function(IDLE_JS, timeout=timeout, polling=100)


def open_tab(page, label: str):
    """Click the app's tab named ``label`` and return a locator of its open panel; look things
    up inside it, not in the whole page (closed tabs keep their old content until a run ends)."""
    from playwright.sync_api import expect

    tab = page.get_by_role("tab", name=label, exact=True)
    wait_idle(page)  # a click during a rerun can be undone when the rerun's own tab state arrives
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")
    wait_idle(page)
    return page.locator(f'{PANEL}[id="{tab.get_attribute("aria-controls")}"]')


# What shows that a tab's content has arrived (an image for the tabs not listed).
TAB_READY = {
    "Manifold grid": '[data-testid="stDownloadButton"]',
    "Sliders": '[data-testid="stSlider"]',
    "Live": '[data-testid^="stBidiComponent"]',
    "Map": ".js-plotly-plot .main-svg",
    "Encode an upload": '[data-testid="stFileUploader"]',
    "Draw": '[data-testid^="stBidiComponent"]',
    "Model card": ".js-plotly-plot .main-svg",
}
TAB_READY_JS = """([label, panel, sel, img]) => {
  const tab = [...document.querySelectorAll('[data-testid="stTab"]')].find(t => t.textContent.trim() === label);
  if (!tab || tab.getAttribute('aria-selected') !== 'true') return false;
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  const p = document.querySelector(panel);
  if (!p || !p.querySelector(sel) || p.querySelector('[data-stale="true"]')) return false;
  return [...p.querySelectorAll(img)].every(i => i.complete && i.naturalWidth > 0);
}"""


def wait_tab(page, label: str, timeout: float = 60_000) -> None:
    """Wait until tab ``label`` is open and drawn: its own element (:data:`TAB_READY`) is in the
    open panel, nothing there is stale, every image in it is loaded, no script is running.
    Unlike ``open_tab`` + ``wait_images`` it cannot be fooled by a closed tab's old image."""
    page.wait_for_function(TAB_READY_JS, arg=[label, PANEL, TAB_READY.get(label, IMG), IMG], timeout=timeout,
                           polling=100)


# In-page timing of "key press on a slider -> decoded image replaced and loaded", in ms.
# Arm it with page.evaluate(ARM_SLIDER_TIMER, IMG), press a key, then page.evaluate("window.__lat").
ARM_SLIDER_TIMER = """
(sel) => { window.__lat = new Promise((resolve) => {
  let t0 = null, done = false;
  const old = document.querySelector(sel)?.src;
  document.addEventListener('keydown', () => { if (t0 === null) t0 = performance.now(); },
                            {capture: true, once: true});
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
