"""Browser latency of the app, measured in Debian chromium (playwright) against a local server.

- first image: page load -> first decoded image loaded (``performance.now()`` at detection,
  i.e. ms since navigation start), warm server (one throwaway load first), median of --loads.
- slider: key press on the first slider -> the decoded image replaced and loaded, timed in
  the page from the keydown event, median of --presses (20 by default).

Usage: python bench/browser_latency.py [--checkpoints DIR] [--model NAME] [--out bench/out/browser_latency.json]
Prints a table and writes JSON. The machine's load average is recorded with the numbers:
on a busy 2-core machine the server and the browser compete for the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer import models  # noqa: E402
from tests.app_server import ARM_SLIDER_TIMER, CHROMIUM, CHROMIUM_ARGS, IMG, open_tab, serve, wait_images  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", type=Path, default=models.default_checkpoint_dir())
    ap.add_argument("--model", default=None, help="model name (file stem); default: the app's default")
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--presses", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("bench/out/browser_latency.json"))
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    entries = models.display_order([e for e in models.discover(a.checkpoints) if e.ok])
    if not entries:
        sys.exit(f"no usable checkpoints in {a.checkpoints}")
    model = a.model or entries[0].name
    z_dim = next(e.z_dim for e in entries if e.name == model)
    with serve(a.checkpoints) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t = time.perf_counter()
        page.goto(f"{url}/?model={model}")
        wait_images(page)
        cold = (time.perf_counter() - t) * 1000
        first = []
        for _ in range(a.loads):
            page.goto(f"{url}/?model={model}")
            wait_images(page)
            first.append(page.evaluate("performance.now()"))
        open_tab(page, "Sliders")
        wait_images(page)
        page.locator('[data-testid="stSlider"] input[type="range"]').first.focus()
        slider = []
        for i in range(a.presses):
            page.evaluate(ARM_SLIDER_TIMER, IMG)
            page.keyboard.press("ArrowRight" if (i // 10) % 2 == 0 else "ArrowLeft")
            slider.append(page.evaluate("window.__lat"))
            page.wait_for_timeout(150)
        browser.close()
    res = {
        "model": model, "z_dim": z_dim, "checkpoints": str(a.checkpoints),
        "first_image_cold_ms": round(cold, 1),
        "first_image_warm_ms": {"median": round(statistics.median(first), 1), "all": [round(v, 1) for v in first]},
        "slider_to_image_ms": {"median": round(statistics.median(slider), 1), "min": round(min(slider), 1),
                               "max": round(max(slider), 1), "all": [round(v, 1) for v in slider]},
        "loadavg_1min_after": os.getloadavg()[0], "cpus": os.cpu_count(),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print(f"model {model} (J={z_dim}), load average {res['loadavg_1min_after']:.1f} on {res['cpus']} CPUs")
    print(f"| first decoded image, cold server | {res['first_image_cold_ms']:.0f} ms |")
    print(f"| first decoded image, warm (median of {a.loads}) | {res['first_image_warm_ms']['median']:.0f} ms |")
    print(f"| slider key press -> new image (median of {a.presses}) | {res['slider_to_image_ms']['median']:.0f} ms |")


if __name__ == "__main__":
    main()
