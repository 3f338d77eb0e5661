"""Browser latency of the app, measured in Debian chromium (playwright) against a local server.

- first image, cold: a freshly started server, asked for the page the moment its health check
  first answers, by a browser already open; page load -> first decoded image loaded, timed from
  Python. The server may have begun its start-up work (streamlit_app.py) only just before.
- first image, warm: the same after one load, ``performance.now()`` at detection (ms since
  navigation start), median of --loads.
- slider: key press on the first slider -> the decoded image replaced and loaded, timed in
  the page from the keydown event, median of --presses (20 by default).

Beside each wall time, the server's CPU seconds for the same step (user + system of the server
process, from /proc): on a busy machine wall times swing with the load, CPU seconds much less.
The cold page's own CPU leaves out what the server did before it was asked (its start-up
imports), so the server's CPU from its start to the first image is given too.
One fresh server per model. Prints a table and writes JSON, one file per model.

Usage: python -m bench.browser_latency [--model NAME ... | --model all] [--checkpoints DIR]
                                       [--out-dir bench/out]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from explorer import models
from tests import procfs
from tests.app_server import ARM_SLIDER_TIMER, CHROMIUM, CHROMIUM_ARGS, IMG, PANEL, serve, wait_images, wait_tab

# The in-page timer's promise, or null after 15 s (a press whose image never came).
LATENCY_JS = "Promise.race([window.__lat, new Promise((r) => setTimeout(() => r(null), 15000))])"


def measure(checkpoints: Path, model: str, z_dim: int, loads: int, presses: int) -> dict:
    from playwright.sync_api import sync_playwright

    load0 = os.getloadavg()[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        with serve(checkpoints, shipped_config=True) as url:
            pid = procfs.child_pid_with_arg(str(urlparse(url).port))
            cpu0 = procfs.cpu_seconds(pid)
            t = time.perf_counter()
            page.goto(f"{url}/?model={model}")
            wait_images(page)
            cold = (time.perf_counter() - t) * 1000
            cold_cpu_total = procfs.settle(pid)
            cold_cpu = cold_cpu_total - cpu0
            res = _warm_and_slider(page, url, pid, model, loads, presses)
        browser.close()
    return {
        "model": model, "z_dim": z_dim, "checkpoints": str(checkpoints),
        "first_image_cold_ms": round(cold, 1), "first_image_cold_server_cpu_s": round(cold_cpu, 3),
        "server_cpu_start_to_first_image_s": round(cold_cpu_total, 3), **res,
        "loadavg_1min_before": round(load0, 2), "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }


def _warm_and_slider(page, url: str, pid: int, model: str, loads: int, presses: int) -> dict:
    """Warm page loads and slider presses on a served app (see the module docstring)."""
    first, first_cpu = [], []
    for _ in range(loads):
        cpu0 = procfs.cpu_seconds(pid)
        page.goto(f"{url}/?model={model}")
        wait_images(page)
        first.append(page.evaluate("performance.now()"))
        first_cpu.append(procfs.settle(pid) - cpu0)
    page.locator('[data-testid="stTab"]', has_text="Sliders").first.click()
    wait_tab(page, "Sliders")
    page.locator(f'{PANEL} [data-testid="stSlider"] input[type="range"]').first.focus()
    slider, lost = [], 0
    cpu0 = procfs.settle(pid)
    for i in range(presses):
        page.evaluate(ARM_SLIDER_TIMER, f"{PANEL} {IMG}")
        page.keyboard.press("ArrowRight" if (i // 10) % 2 == 0 else "ArrowLeft")
        ms = page.evaluate(LATENCY_JS)
        if ms is None:
            lost += 1
        else:
            slider.append(ms)
        page.wait_for_timeout(150)
    slider_cpu = (procfs.settle(pid) - cpu0) / presses
    if not slider:
        raise RuntimeError(f"{model}: no slider press produced a new image")
    return {
        "first_image_warm_ms": {"median": round(statistics.median(first), 1), "all": [round(v, 1) for v in first]},
        "first_image_warm_server_cpu_s": round(statistics.median(first_cpu), 3),
        "slider_to_image_ms": {"median": round(statistics.median(slider), 1), "min": round(min(slider), 1),
                               "max": round(max(slider), 1), "all": [round(v, 1) for v in slider]},
        "slider_server_cpu_s_per_press": round(slider_cpu, 4), "slider_presses_without_image": lost,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--checkpoints", type=Path, default=models.default_checkpoint_dir())
    ap.add_argument("--model", nargs="*", default=None,
                    help="model names (file stems), or 'all'; default: the app's default model")
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--presses", type=int, default=20)
    ap.add_argument("--out-dir", type=Path, default=Path("bench/out"),
                    help="writes browser_latency_<model>.json here (default bench/out)")
    a = ap.parse_args()
    entries = models.display_order([e for e in models.discover(a.checkpoints) if e.ok])
    if not entries:
        sys.exit(f"no usable checkpoints in {a.checkpoints}")
    z_dims = {e.name: e.z_dim for e in entries}
    names = list(z_dims) if a.model == ["all"] else (a.model or [entries[0].name])
    if unknown := [n for n in names if n not in z_dims]:
        sys.exit(f"no usable checkpoint named {', '.join(unknown)} in {a.checkpoints}")
    a.out_dir.mkdir(parents=True, exist_ok=True)
    print("| model | first image, cold server | warm (median) | slider -> image (median) | server CPU: "
          "start to first image / cold page / warm page / per slider move | load avg |")
    print("|---|---|---|---|---|---|")
    for name in names:
        res = measure(a.checkpoints, name, z_dims[name], a.loads, a.presses)
        (a.out_dir / f"browser_latency_{name}.json").write_text(json.dumps(res, indent=2))
        print(f"| {name} | {res['first_image_cold_ms']:.0f} ms | {res['first_image_warm_ms']['median']:.0f} ms | "
              f"{res['slider_to_image_ms']['median']:.0f} ms | {res['server_cpu_start_to_first_image_s']:.2f} / "
              f"{res['first_image_cold_server_cpu_s']:.2f} / "
              f"{res['first_image_warm_server_cpu_s']:.2f} / {res['slider_server_cpu_s_per_press']:.3f} s | "
              f"{res['loadavg_1min_before']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
