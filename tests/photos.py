"""Synthetic photographs of handwritten digits, for the upload tests and ``bench/upload_cost.py``.

A digit is a few pen strokes (polylines in the unit square). :func:`clean` renders it as black ink
on white paper; :func:`photo` renders the same strokes as a phone would see them: paper lit
unevenly (a brightness gradient and a vignette), ink that only darkens the paper by a factor
(a pen absorbs most light, a whiteboard marker much less), a colour cast, sensor noise and JPEG.
Both put the digit at the same place in the same frame, so a test can compare what the
preprocessing makes of each.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

# Strokes of handwriting-like digits: lists of (x, y) points in the unit square, y down.
DIGITS: dict[str, list[list[tuple[float, float]]]] = {
    "2": [[(0.12, 0.25), (0.3, 0.06), (0.6, 0.02), (0.85, 0.18), (0.83, 0.42), (0.5, 0.7), (0.08, 0.97),
           (0.55, 0.93), (0.95, 0.96)]],
    "3": [[(0.15, 0.12), (0.45, 0.0), (0.8, 0.1), (0.78, 0.33), (0.45, 0.47)],
          [(0.45, 0.47), (0.85, 0.6), (0.88, 0.85), (0.55, 1.0), (0.12, 0.9)]],
    "4": [[(0.62, 0.0), (0.05, 0.68), (0.95, 0.68)], [(0.7, 0.3), (0.68, 1.0)]],
    "5": [[(0.85, 0.02), (0.25, 0.04), (0.18, 0.45), (0.55, 0.38), (0.85, 0.55), (0.85, 0.82), (0.5, 1.0),
           (0.1, 0.88)]],
    "7": [[(0.05, 0.05), (0.95, 0.02), (0.55, 0.55), (0.35, 1.0)], [(0.3, 0.5), (0.8, 0.5)]],
    # a 5 whose top bar was written separately and does not touch the body: two pieces, one digit
    "5, lifted bar": [[(0.3, 0.2), (0.2, 0.45), (0.55, 0.38), (0.85, 0.55), (0.85, 0.82), (0.5, 1.0), (0.1, 0.88)],
                      [(0.35, 0.03), (0.9, 0.0)]],
}


def ink(digit: str, frame_wh: tuple[int, int], box: tuple[int, int, int], stroke: float = 0.11,
        supersample: int = 4) -> np.ndarray:
    """Ink coverage (h, w) float32 in [0, 1] of ``digit`` drawn in a ``frame_wh`` (w, h) frame;
    ``box`` = (left, top, height) of the digit, which is 0.8 times as wide as it is tall;
    ``stroke`` is the pen width as a fraction of the digit's height. Anti-aliased by
    ``supersample``; only the box is rendered, so a 4000x3000 frame stays cheap."""
    W, H = frame_wh
    left, top, dh = box
    dw = round(0.8 * dh)
    pen = max(1.0, stroke * dh)
    pad = int(np.ceil(pen))
    s = supersample
    tile = Image.new("L", ((dw + 2 * pad) * s, (dh + 2 * pad) * s), 0)
    draw = ImageDraw.Draw(tile)
    r = pen * s / 2
    for line in DIGITS[digit]:
        pts = [((pad + x * dw) * s, (pad + y * dh) * s) for x, y in line]
        draw.line(pts, fill=255, width=round(pen * s), joint="curve")
        for px, py in (pts[0], pts[-1]):  # round pen tips
            draw.ellipse((px - r, py - r, px + r, py + r), fill=255)
    tile = tile.reduce(s)
    out = np.zeros((H, W), np.float32)
    y0, x0 = top - pad, left - pad
    t = np.asarray(tile, np.float32) / 255.0
    ys, xs = slice(max(0, y0), min(H, y0 + t.shape[0])), slice(max(0, x0), min(W, x0 + t.shape[1]))
    out[ys, xs] = t[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return out


def _encode(a: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt, **kw)
    return buf.getvalue()


def clean(digit: str, frame_wh: tuple[int, int], box: tuple[int, int, int], stroke: float = 0.11) -> bytes:
    """The digit in black ink on white paper, nothing else: a PNG."""
    cov = ink(digit, frame_wh, box, stroke)
    return _encode(np.rint(255 * (1 - cov)).astype(np.uint8), "PNG")


def photo(digit: str, frame_wh: tuple[int, int], box: tuple[int, int, int], *, stroke: float = 0.11,
          paper: tuple[float, float] = (0.45, 0.95), ink_ratio: float = 0.2, ink_rgb=(0.25, 0.25, 0.35),
          noise: float = 0.03, quality: int = 80, shadow: float = 0.0, ruled: float = 0.0, seed: int = 0) -> bytes:
    """A phone photograph of the digit as a JPEG (RGB). The paper's brightness runs from
    ``paper[0]`` (one corner) to ``paper[1]`` (the opposite one) with a vignette; where there is
    ink, the paper's light is multiplied by ``ink_ratio`` (0.2: a pen; 0.7: a faint marker),
    tinted by ``ink_rgb``; Gaussian sensor noise of ``noise`` (in [0, 1] units) per channel.
    ``shadow``: the phone's soft shadow darkens a blob at the lower left by this fraction;
    ``ruled``: blue ruled lines across the sheet absorb this fraction of the red light."""
    W, H = frame_wh
    rng = np.random.default_rng(seed)
    cov = ink(digit, frame_wh, box, stroke)
    # Lighting on a coarse grid, upsampled: a diagonal gradient times a vignette, and a shadow.
    gy, gx = np.mgrid[0:1:33j, 0:1:33j]
    light = paper[0] + (paper[1] - paper[0]) * (0.65 * gx + 0.35 * gy)
    light = light * (1 - 0.25 * ((gx - 0.6) ** 2 + (gy - 0.4) ** 2))
    light = light * (1 - shadow * np.exp(-(((gx - 0.25) / 0.2) ** 2 + ((gy - 0.75) / 0.2) ** 2)))
    light = np.asarray(Image.fromarray(light.astype(np.float32)).resize((W, H), Image.Resampling.BILINEAR))
    lines = np.zeros((H, 1), np.float32)
    if ruled:
        gap = max(4, H // 15)
        for y in range(gap // 2, H, gap):
            lines[y : y + max(1, H // 300)] = ruled
    out = np.empty((H, W, 3), np.uint8)
    tint = np.array([1.0, 0.97, 0.9], np.float32)  # warm indoor light on white paper
    for c, line_absorbs in zip(range(3), (1.0, 0.5, 0.0)):
        refl = (1 - cov * (1 - ink_ratio * ink_rgb[c] / max(ink_rgb))) * (1 - line_absorbs * lines)
        v = light * tint[c] * refl + rng.normal(0, noise, (H, W)).astype(np.float32)
        out[..., c] = np.clip(np.rint(v * 255), 0, 255)
    return _encode(out, "JPEG", quality=quality)


# The photographs the tests and the bench use: name -> (digit, frame (w, h), box (left, top, height), photo options).
SCENES: dict[str, tuple[str, tuple[int, int], tuple[int, int, int], dict]] = {
    # a phone photo of a sheet lit from one side: the far corner is less than half as bright
    "gradient paper": ("2", (1600, 1200), (520, 260, 640), dict(paper=(0.35, 0.95), noise=0.03, quality=80)),
    # a small digit off-centre in a 12-megapixel frame
    "small digit, 4000x3000": ("4", (4000, 3000), (2500, 900, 260),
                               dict(paper=(0.5, 0.9), noise=0.025, quality=85, stroke=0.1)),
    # a thin blue marker on a glossy white board: the ink is only about 30% darker than the board
    # a dim, noisy photo of ruled notebook paper with the phone's shadow on it
    "shadow, ruled paper": ("5", (1200, 900), (450, 200, 480),
                            dict(paper=(0.25, 0.55), noise=0.04, quality=75, shadow=0.5, ruled=0.3)),
    "whiteboard": ("3", (1280, 960), (400, 220, 520),
                   dict(paper=(0.7, 0.95), ink_ratio=0.7, ink_rgb=(0.3, 0.45, 0.9), noise=0.02, quality=75,
                        stroke=0.08)),
}


def scene(name: str, seed: int = 0) -> tuple[bytes, bytes]:
    """(the photograph as JPEG bytes, the clean rendering of the same digit as PNG bytes)."""
    digit, frame, box, kw = SCENES[name]
    return photo(digit, frame, box, seed=seed, **kw), clean(digit, frame, box, kw.get("stroke", 0.11))
