"""Image arrays to what a page shows or a user downloads: tiled grids, upscaling, PNG and GIF.

Images are float arrays in [0, 1] (grayscale) unless a function says otherwise. Shapes:
``N`` images, ``H x W`` pixels each; grids are ``(R, C, H, W)``.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from PIL import Image


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] (any shape) -> uint8 0..255, clipped (decoders can overshoot slightly)."""
    return (np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def tile(images: np.ndarray, ncols: int | None = None, pad: int = 1, pad_value: float = 0.5) -> np.ndarray:
    """Lay images out as one picture.

    ``images`` (R, C, H, W) keeps its rows and columns; (N, H, W) is laid out ``ncols`` per
    row (default: as square as possible), the last row filled with ``pad_value``. Returns
    (R*H + (R-1)*pad, C*W + (C-1)*pad). The grey padding keeps neighbouring digits apart."""
    a = np.asarray(images, dtype=np.float32)
    if a.ndim == 3:
        n = a.shape[0]
        if n == 0:
            raise ValueError("tile: no images to tile")
        c = ncols or int(np.ceil(np.sqrt(n)))
        r = int(np.ceil(n / c))
        full = np.full((r * c, *a.shape[1:]), pad_value, dtype=np.float32)
        full[:n] = a
        a = full.reshape(r, c, *a.shape[1:])
    if a.ndim != 4:
        raise ValueError(f"tile: expected (R, C, H, W) or (N, H, W) images, got shape {a.shape}")
    r, c, h, w = a.shape
    out = np.full((r * h + (r - 1) * pad, c * w + (c - 1) * pad), pad_value, dtype=np.float32)
    for i in range(r):
        for j in range(c):
            out[i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = a[i, j]
    return out


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling (H, W) -> (H*factor, W*factor): a 28x28 digit stays crisp
    (the browser would otherwise blur it when it stretches a tiny image)."""
    if factor < 1:
        raise ValueError(f"upscale factor must be >= 1, got {factor}")
    a = np.asarray(img)
    return np.repeat(np.repeat(a, factor, axis=0), factor, axis=1)


def display(img: np.ndarray, factor: int = 6) -> np.ndarray:
    """What the app hands to ``st.image``: uint8 (H*factor, W*factor) from floats in [0, 1]."""
    return upscale(to_uint8(img), factor)


def letterbox(img: np.ndarray, size: int, pad_value: float = 0.5) -> np.ndarray:
    """A float (h, w) image fitted into a (size, size) canvas of ``pad_value``, centred, its
    proportions kept: small images grow by the largest integer factor (crisp pixels), large
    ones shrink smoothly. Every step of a pipeline is then shown at one size, framed."""
    a = np.asarray(img, dtype=np.float32)
    h, w = a.shape
    if max(h, w) <= size:
        up = upscale(a, max(1, size // max(h, w)))
    else:
        s = size / max(h, w)
        im = Image.fromarray(a).resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
        up = np.asarray(im, dtype=np.float32)
    out = np.full((size, size), pad_value, np.float32)
    top, left = (size - up.shape[0]) // 2, (size - up.shape[1]) // 2
    out[top : top + up.shape[0], left : left + up.shape[1]] = up
    return out


def display_size(shape: tuple[int, int], target: int = 280, max_factor: int = 8) -> tuple[int, int]:
    """How to show an (h, w) image with its longer side at ``target`` screen pixels (at most
    ``max_factor`` per image pixel): ``(factor, width)``, the integer nearest-neighbour
    upscale for the PNG (at least the shown size, so the browser only ever shrinks it and
    pixels stay crisp) and the width in CSS pixels to show it at. Two images of one shape
    get one size, whatever their captions."""
    h, w = shape
    scale = min(float(max_factor), target / max(1, h, w))
    return max(1, math.ceil(scale - 1e-9)), max(1, round(w * scale))


def png_bytes(img: np.ndarray, factor: int = 1) -> bytes:
    """Encode a float (H, W) image in [0, 1] as a grayscale PNG, upscaled by ``factor``."""
    buf = io.BytesIO()
    Image.fromarray(upscale(to_uint8(img), factor)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_data_uri(img: np.ndarray, factor: int = 1) -> str:
    """``data:image/png;base64,...`` for a float (H, W) image: the picture travels inside the
    page update itself, so the browser makes no second request for it (the slider's hot path)."""
    buf = io.BytesIO()
    Image.fromarray(upscale(to_uint8(img), factor)).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def gif_bytes(frames: np.ndarray, factor: int = 4, duration_ms: int = 80, boomerang: bool = True) -> bytes:
    """An endlessly looping animated GIF of float frames (N, H, W) in [0, 1].

    ``boomerang`` plays the frames forward then back, so an interpolation does not jump."""
    f = np.asarray(frames)
    if f.ndim != 3 or f.shape[0] == 0:
        raise ValueError(f"gif_bytes: expected (N, H, W) frames, got shape {f.shape}")
    seq = list(f) + (list(f[-2:0:-1]) if boomerang and len(f) > 2 else [])
    ims = [Image.fromarray(upscale(to_uint8(x), factor)) for x in seq]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=duration_ms, loop=0)
    return buf.getvalue()
