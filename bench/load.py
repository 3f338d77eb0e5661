"""Many users at once: N browser sessions against one app server on 127.0.0.1.

One server (``streamlit run streamlit_app.py`` with the repository's .streamlit/config.toml;
only the port and headless mode are set on the command line) and one headless Debian chromium
with N browser contexts (N separate sessions, no shared cache). Steps:

1. warm-up: one session opens the page (models load, caches fill); its server CPU is the cold cost;
2. first page: the N sessions open the page at once; each waits for its first decoded image;
3. tab switches: for each tab in ``--tabs``, the N sessions click it at once and wait for its
   content (the tab's own element present, every image loaded, the script finished).

Per step it reports the server's CPU seconds (user + system of the server process, all threads,
from /proc) divided by N, the server's resident memory (now and peak), the median and max
wall time the sessions waited, and errors (an exception box on a page, or a wait that timed
out). The browsers share the machine's cores with the server, so their wall times grow with N
on a small machine: judge the server by its CPU seconds. ``--waves`` repeats steps 2-3 with
fresh contexts (the server's memory should stay bounded from wave to wave).

Usage: python -m bench.load [--sessions 20] [--tabs Map "Model card"] [--waves 1]
                            [--model NAME] [--checkpoints DIR] [--out bench/out/load.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from explorer import models
from tests import procfs
from tests.app_server import CHROMIUM, CHROMIUM_ARGS, IMG, PANEL, TAB_READY, TAB_READY_JS, serve

TABS = ["Manifold grid", "Sliders", "Live", "Map", "Encode an upload", "Draw", "Interpolate", "Directions",
        "Model card", "Likelihood", "Compare"]
FIRST_IMAGE_JS = """(sel) => { const ims = [...document.querySelectorAll(sel)];
  return ims.length > 0 && ims.every(i => i.complete && i.naturalWidth > 0); }"""
ERRORS_JS = """() => [...document.querySelectorAll('[data-testid="stException"]')]
  .map(e => e.innerText.split('\\n')[0])"""


async def _timed(page, fn, timeout_ms: float) -> tuple[float | None, str | None]:
    """Run ``fn()`` (an awaitable factory) and time it; (seconds, None) or (None, error)."""
    t = time.perf_counter()
    try:
        await fn()
    except Exception as e:  # a timeout or a closed page: counted as an error, the run goes on
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    errs = await page.evaluate(ERRORS_JS)
    return time.perf_counter() - t, ("exception on the page: " + errs[0]) if errs else None


async def _first_page(page, url: str, timeout_ms: float):
    async def go():
        await page.goto(url, timeout=timeout_ms)
        await page.wait_for_function(FIRST_IMAGE_JS, arg=IMG, timeout=timeout_ms, polling=100)
    return await _timed(page, go, timeout_ms)


async def _switch(page, label: str, timeout_ms: float):
    async def go():
        await page.locator('[data-testid="stTab"]', has_text=label).first.click(timeout=timeout_ms)
        await page.wait_for_function(TAB_READY_JS, arg=[label, PANEL, TAB_READY.get(label, IMG), IMG],
                                     timeout=timeout_ms, polling=100)
    return await _timed(page, go, timeout_ms)


def _summary(name: str, pid: int, cpu0: float, results: list, n: int) -> dict:
    cpu = procfs.cpu_seconds(pid) - cpu0
    times = [t for t, _ in results if t is not None]
    errors = [e for _, e in results if e]
    row = {"step": name, "sessions": n, "server_cpu_s": round(cpu, 3), "server_cpu_per_session_s": round(cpu / n, 3),
           "wall_median_s": round(statistics.median(times), 2) if times else None,
           "wall_max_s": round(max(times), 2) if times else None, "errors": len(errors), "error_samples": errors[:3],
           **{f"server_{k}_mb": round(v, 1) for k, v in procfs.memory_mb(pid).items()},
           "loadavg_1min": round(os.getloadavg()[0], 2)}
    print(f"{name:>22}: server CPU {row['server_cpu_per_session_s']:.3f} s/session, wall median "
          f"{row['wall_median_s']} s max {row['wall_max_s']} s, errors {row['errors']}, "
          f"RSS {row.get('server_rss_mb')} MB (peak {row.get('server_peak_mb')}), load {row['loadavg_1min']}",
          flush=True)
    return row


async def _wave(browser, pid: int, url: str, tabs: list[str], n: int, timeout_ms: float) -> list[dict]:
    contexts = [await browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(n)]
    pages = [await c.new_page() for c in contexts]
    rows = []
    procfs.settle(pid)
    cpu0 = procfs.cpu_seconds(pid)
    res = await asyncio.gather(*(_first_page(p, url, timeout_ms) for p in pages))
    procfs.settle(pid)
    rows.append(_summary("first page", pid, cpu0, res, n))
    for label in tabs:
        cpu0 = procfs.cpu_seconds(pid)
        res = await asyncio.gather(*(_switch(p, label, timeout_ms) for p in pages))
        procfs.settle(pid)
        rows.append(_summary(f"switch to {label}", pid, cpu0, res, n))
    for c in contexts:
        await c.close()
    return rows


async def run(url: str, pid: int, a) -> dict:
    from playwright.async_api import async_playwright

    out = {"url_model": a.model, "sessions": a.sessions, "tabs": a.tabs, "waves": []}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        cpu0 = procfs.cpu_seconds(pid)
        ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
        res = [await _first_page(await ctx.new_page(), url, a.timeout * 1000)]
        procfs.settle(pid)
        out["warm_up"] = _summary("warm-up (one session)", pid, cpu0, res, 1)
        await ctx.close()
        for w in range(a.waves):
            print(f"wave {w + 1}: {a.sessions} sessions", flush=True)
            out["waves"].append(await _wave(browser, pid, url, a.tabs, a.sessions, a.timeout * 1000))
        await browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--sessions", type=int, default=20, help="browser sessions at once (default 20)")
    ap.add_argument("--tabs", nargs="*", default=["Map", "Model card"], choices=TABS,
                    help="tabs every session switches to, in order (default: Map, Model card)")
    ap.add_argument("--waves", type=int, default=1, help="repeat with fresh sessions (default 1)")
    ap.add_argument("--checkpoints", type=Path, default=models.default_checkpoint_dir())
    ap.add_argument("--model", default=None, help="model name (file stem); default: the app's default")
    ap.add_argument("--timeout", type=float, default=300, help="seconds a session may wait per step")
    ap.add_argument("--out", type=Path, default=Path("bench/out/load.json"))
    a = ap.parse_args()
    entries = models.display_order([e for e in models.discover(a.checkpoints) if e.ok])
    if not entries:
        sys.exit(f"no usable checkpoints in {a.checkpoints}")
    a.model = a.model or entries[0].name
    t0 = time.monotonic()
    with serve(a.checkpoints, shipped_config=True) as base:
        pid = procfs.child_pid_with_arg(str(urlparse(base).port))
        started = procfs.cpu_seconds(pid)
        res = asyncio.run(run(f"{base}/?model={a.model}", pid, a))
    res.update(server_start_cpu_s=round(started, 2), cpus=os.cpu_count(), checkpoints=str(a.checkpoints),
               total_wall_s=round(time.monotonic() - t0, 1))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
