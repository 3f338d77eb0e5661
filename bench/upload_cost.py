"""What one upload costs the server: peak memory and CPU time of decoding + preprocessing, worst case
over hostile-but-accepted files (within the 10 MB / 25 megapixel limits).

    python -m bench.upload_cost [--rounds 3] [--baseline PATH] [--out bench/results/upload_cost.txt]

Each file is prepared (``explorer.preprocess.prepare``, MNIST style 28x28 unless the case says
``fit``) in a fresh Python process, after a warm-up on a small PNG so that imports and first-call
costs are excluded. Reported per case: the peak resident memory above the process's baseline
(``VmHWM`` after minus ``VmRSS`` before, from /proc/self/status, the peak reset after the warm-up;
``ru_maxrss`` would carry the parent's peak across fork; the baseline is in the header) and the
process CPU seconds of the call (``time.process_time``), the max and the median over ``--rounds``
runs. ``--baseline`` measures another checkout too (e.g. ``git archive main | tar -x -C /tmp/main``),
case by case on the same files, for before/after figures. CPU time rather than wall time: the
machine is shared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

from tests import photos

ROOT = Path(__file__).resolve().parents[1]

# Runs in the child: prepare one file, print {"cpu_s", "base_mb", "peak_mb", "result"} as JSON.
CHILD = r"""
import json, sys, time, io
import numpy as np
from PIL import Image
from explorer import preprocess
def status_mb(key):  # VmRSS / VmHWM of this process image (ru_maxrss would include the parent's, from fork)
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key + ":")) / 1024
warm = io.BytesIO(); a = np.full((64, 48), 255, np.uint8); a[10:50, 20:28] = 0
Image.fromarray(a).save(warm, "PNG")
preprocess.prepare(warm.getvalue(), "mnist", (28, 28)); preprocess.prepare(warm.getvalue(), "fit", (28, 20))
data = open(sys.argv[1], "rb").read()
style, shape = sys.argv[2], (28, 28) if sys.argv[2] == "mnist" else (28, 20)
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current resident set: the warm-up does not count
except OSError:
    pass
base = status_mb("VmRSS")
t0 = time.process_time()
try:
    p = preprocess.prepare(data, style, shape, name="f")
    result = f"ok {p.x.shape[1]}x{p.x.shape[0]}" if np.isfinite(p.x).all() else "NON-FINITE"
except preprocess.UploadError as e:
    result = "refused: " + str(e)[3:80]
cpu = time.process_time() - t0
peak = status_mb("VmHWM")
print(json.dumps({"cpu_s": cpu, "base_mb": base, "peak_mb": peak, "result": result}))
"""


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _digit_sheet(w: int, h: int, mode: str = "L", bg=255, ink=0, width: int | None = None) -> Image.Image:
    """A big "7" drawn across a ``w x h`` sheet: large flat areas (so the file compresses into the
    byte limit) with real ink (so it is accepted, not refused as blank)."""
    im = Image.new(mode, (w, h), bg)
    d = ImageDraw.Draw(im)
    lw = width or max(4, min(w, h) // 25)
    d.line([(w * 0.25, h * 0.2), (w * 0.75, h * 0.2), (w * 0.45, h * 0.8)], fill=ink, width=lw, joint="curve")
    return im


def _gradient_photo(w: int, h: int, noise: float, fmt: str = "JPEG", **kw) -> bytes:
    """A phone photo of a "7" on unevenly lit paper (tests/photos.py), saved as ``fmt``."""
    shot = photos.photo("7", (w, h), (w // 3, h // 5, h * 3 // 5), noise=noise, quality=95)
    return _save(Image.open(io.BytesIO(shot)), fmt, **kw)


def cases() -> dict[str, tuple[Callable[[], bytes], str]]:
    """name -> (make the file's bytes, style). Every file is within 10 MB and 25 megapixels."""
    rgba0 = (0, 0, 0, 0)
    return {
        "webp lossless 5000x5000 RGBA, transparent": (
            lambda: _save(_digit_sheet(5000, 5000, "RGBA", rgba0, (0, 0, 0, 255)), "WEBP", lossless=True), "mnist"),
        "webp lossless 5000x5000 RGBA, blank": (
            lambda: _save(Image.new("RGBA", (5000, 5000), rgba0), "WEBP", lossless=True), "mnist"),
        "webp lossless 4000x4000 RGBA, transparent": (
            lambda: _save(_digit_sheet(4000, 4000, "RGBA", rgba0, (0, 0, 0, 255)), "WEBP", lossless=True), "mnist"),
        "webp lossy 4000x4000 RGB": (
            lambda: _save(_digit_sheet(4000, 4000, "RGB", (255,) * 3, (0,) * 3), "WEBP", quality=80), "mnist"),
        "webp lossy 5000x5000 RGB": (
            lambda: _save(_digit_sheet(5000, 5000, "RGB", (255,) * 3, (0,) * 3), "WEBP", quality=80), "mnist"),
        "webp animated 4000x4000 x3": (
            lambda: _save(_digit_sheet(4000, 4000, "RGBA", rgba0, (0, 0, 0, 255)), "WEBP", lossless=True,
                          save_all=True, append_images=[Image.new("RGBA", (4000, 4000), (9, 9, 9, 255))] * 2),
            "mnist"),
        "png 5000x5000 RGB": (lambda: _save(_digit_sheet(5000, 5000, "RGB", (250, 248, 240), (20, 20, 60)), "PNG"),
                              "mnist"),
        "png 5000x5000 RGBA": (lambda: _save(_digit_sheet(5000, 5000, "RGBA", (255, 255, 255, 0), (0, 0, 0, 255)),
                                             "PNG"), "mnist"),
        "png 5000x5000 16-bit": (lambda: _save(_digit_sheet(5000, 5000, "I;16", 65535, 0), "PNG"), "mnist"),
        "png 5000x5000 palette+transparency": (
            lambda: _save(_digit_sheet(5000, 5000).convert("P"), "PNG", transparency=255), "mnist"),
        "png 25000x1000 RGB": (lambda: _save(_digit_sheet(25000, 1000, "RGB", (255,) * 3, (0,) * 3), "PNG"), "mnist"),
        "png 5000x5000 RGB, fit": (lambda: _save(_digit_sheet(5000, 5000, "RGB", (200,) * 3, (30,) * 3), "PNG"),
                                   "fit"),
        "gif 5000x5000 animated x3": (
            lambda: _save(_digit_sheet(5000, 5000, "L"), "GIF", save_all=True,
                          append_images=[Image.new("L", (5000, 5000), v) for v in (60, 120)]), "mnist"),
        "gif 2000x2000, 300 frames": (
            lambda: _save(_digit_sheet(2000, 2000, "L"), "GIF", save_all=True,
                          append_images=[_digit_sheet(2000, 2000, "L", 255 - i % 50, 0) for i in range(299)]),
            "mnist"),
        "bmp 3000x3000 8-bit": (lambda: _save(_digit_sheet(3000, 3000, "L"), "BMP"), "mnist"),
        "png 5000x5000 photo": (lambda: _gradient_photo(5000, 5000, 0.0, "PNG"), "mnist"),
        "jpeg 5000x5000 photo, 6 MB": (lambda: _gradient_photo(5000, 5000, 0.03, quality=90), "mnist"),
        "jpeg 5000x5000 photo, progressive": (
            lambda: _gradient_photo(5000, 5000, 0.03, quality=85, progressive=True), "mnist"),
        "jpeg 5000x5000 CMYK": (lambda: _save(_digit_sheet(5000, 5000, "CMYK", (0, 0, 0, 0), (0, 0, 0, 255)), "JPEG",
                                              quality=90), "mnist"),
        "jpeg 4000x3000 photo, small digit": (lambda: photos.scene("small digit, 4000x3000")[0], "mnist"),
        "jpeg 5000x5000 photo, fit": (lambda: _gradient_photo(5000, 5000, 0.03, quality=90), "fit"),
        "png 280x280 drawing": (lambda: _save(_digit_sheet(280, 280, "L", 0, 255, width=18), "PNG"), "mnist"),
    }


def measure(path: Path, style: str, code: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), style], cwd=code, env=env,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return {"cpu_s": float("nan"), "base_mb": float("nan"), "peak_mb": float("nan"),
                "result": "CRASH: " + (out.stderr.strip().splitlines() or ["?"])[-1][:70]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _runs(path: Path, style: str, code: Path, rounds: int) -> tuple[float, float, float, str, list[float]]:
    """(max peak MB above baseline, max CPU s, median CPU s, last result, baselines) over ``rounds``."""
    runs = [measure(path, style, code) for _ in range(rounds)]
    cpus = [r["cpu_s"] for r in runs]
    return (max(r["peak_mb"] - r["base_mb"] for r in runs), max(cpus), statistics.median(cpus), runs[-1]["result"],
            [r["base_mb"] for r in runs])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout whose explorer/preprocess.py is measured")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="also measure this checkout (e.g. main's), case by case alternating with --code")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    ap.add_argument("--only", default="", help="run only cases whose name contains this")
    args = ap.parse_args()
    codes = {"": args.code} if args.baseline is None else {"before": args.baseline, "after": args.code}
    head = f"{'case':<42} {'bytes':>10}" + "".join(
        f" {k + ' MB':>10} {k + ' CPU s':>12} {'(median)':>8}" for k in codes) + "  result"
    lines = [", ".join(f"{k or 'code'}: {c.resolve()}" for k, c in codes.items())
             + f"; {args.rounds} rounds per case, each in a fresh process", head]
    worst = {k: [0.0, 0.0] for k in codes}
    base: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (make, style) in cases().items():
            if args.only not in name:
                continue
            path = Path(tmp) / "upload.bin"
            data = make()
            path.write_bytes(data)
            line = f"{name:<42} {len(data):>10,}"
            results = []
            for k, code in codes.items():
                peak, cpu, med, result, b = _runs(path, style, code, args.rounds)
                worst[k] = [max(worst[k][0], peak), max(worst[k][1], cpu)]
                base += b
                line += f" {peak:>10.0f} {cpu:>12.2f} {med:>8.2f}"
                results.append(result)
            line += "  " + " -> ".join(dict.fromkeys(results))
            print(line, flush=True)
            lines.append(line)
    lines.insert(1, f"baseline resident set after imports and warm-up: {statistics.median(base):.0f} MB "
                    "(MB columns: peak above it)")
    lines += [f"worst case{' ' + k if k else ''}: {mb:.0f} MB above baseline, {s:.2f} CPU s"
              for k, (mb, s) in worst.items()]
    print("\n".join(lines[-len(worst):]))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
