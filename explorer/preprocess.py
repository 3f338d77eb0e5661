"""An uploaded file -> the image a model sees, keeping every intermediate step for display.

Two styles:

- ``mnist``: how MNIST itself was made. Grayscale; inverted if the background is light (MNIST
  ink is light on dark); levels stretched so background is 0 and the strongest ink 1; cropped
  to the ink's bounding box; scaled so the longest side is 20 px, keeping the aspect ratio;
  pasted into a 28x28 field so the centre of mass sits at the centre.
- ``fit``: for faces and other photos (Frey Face). Grayscale, centre-cropped to the model's
  aspect ratio, resized to its H x W (28 x 20 for Frey Face).

Every image is a float32 array (h, w) in [0, 1]. Anything wrong with the file raises
:class:`UploadError` with a one-line message meant for the user.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "GIF": "GIF", "BMP": "BMP", "DIB": "BMP", "WEBP": "WebP"}
UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp"]  # for st.file_uploader(type=...)
MAX_BYTES = 10 * 1024 * 1024  # the same cap as .streamlit/config.toml's maxUploadSize
MAX_PIXELS = 25_000_000  # refuse before decoding: a 5000x5000 photo is fine, a "bomb" is not
MIN_SIDE = 8  # smaller than this carries no digit or face
WORK_SIDE = 512  # larger images are shrunk to this first; the model sees 28 px anyway
MNIST_BOX = 20 / 28  # MNIST digits fit a 20x20 box inside the 28x28 field


class UploadError(ValueError):
    """An upload the app cannot use; the message says why, in one line."""


@dataclass
class Step:
    """One stage of preprocessing: a short title, the image (h, w) in [0, 1], and a note."""

    title: str
    image: np.ndarray
    note: str = ""


@dataclass
class Prepared:
    """The model input ``x`` (H, W) float32 in [0, 1], the steps that led to it, and notes
    about the file (animated, 16-bit, transparency, ...)."""

    x: np.ndarray
    steps: list[Step]
    notes: list[str] = field(default_factory=list)
    format: str = ""
    size: tuple[int, int] = (0, 0)  # original (width, height)


def style_for_dataset(dataset: str) -> str:
    """``mnist`` for MNIST models, ``fit`` for everything else (faces, folders of images)."""
    return "mnist" if dataset == "mnist" else "fit"


# --- decoding a file ------------------------------------------------------------------------

def _open(data: bytes, name: str) -> Image.Image:
    if not data:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > MAX_BYTES:
        raise UploadError(f"{name}: the file is {len(data) / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; treat it as the error it is.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))  # lazy: reads the header, decodes nothing yet
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(f"{name}: declares an enormous image (a decompression bomb?); refused") from None
    except UnidentifiedImageError:
        raise UploadError(f"{name}: not an image Pillow can read (expected PNG, JPEG, GIF, BMP or WebP)") from None
    except Exception as e:  # noqa: BLE001 - a malformed header can raise almost anything
        raise UploadError(f"{name}: could not read the image header ({type(e).__name__}: {e})") from None
    if im.format not in FORMATS:
        raise UploadError(f"{name}: {im.format} images are not supported (expected PNG, JPEG, GIF, BMP or WebP)")
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise UploadError(
            f"{name}: {w}x{h} pixels is too large (limit {MAX_PIXELS / 1e6:.0f} megapixels); "
            "a decompression bomb, or a photo to shrink first"
        )
    if min(w, h) < MIN_SIDE:
        raise UploadError(f"{name}: {w}x{h} pixels is too small; need at least {MIN_SIDE}x{MIN_SIDE}")
    return im


def _to_gray(im: Image.Image, notes: list[str]) -> np.ndarray:
    """Decoded image of any Pillow mode -> (h, w) float64 in [0, 1]. Transparency is
    composited onto whichever of black or white contrasts with the visible pixels, so both
    a black pen on a transparent sheet and a white one stay visible."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        depth = 65535.0 if (mode.startswith("I;16") or a.max(initial=0) > 255) else 255.0
        if depth > 255:
            notes.append("16-bit image: scaled from 0..65535")
        return np.clip(a / depth, 0, 1)
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        return np.clip(a / 255.0 if a.max(initial=0) > 1.0 else a, 0, 1)
    if mode == "CMYK":
        notes.append("CMYK image: converted to RGB")
        im = im.convert("RGB")
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa", "RGBX"):
        im = im.convert("RGBA" if mode != "RGBX" else "RGB")
    elif mode in ("L", "RGB", "RGBA"):
        pass
    elif mode == "1":
        im = im.convert("L")
    else:  # YCbCr, LAB, HSV, ...: let Pillow bring it to RGB
        im = im.convert("RGB")
    a = np.asarray(im, dtype=np.float64) / 255.0
    if a.ndim == 2:
        return a
    lum = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114  # ITU-R 601 luma, as Pillow's "L"
    if a.shape[-1] == 4:
        alpha = a[..., 3]
        if alpha.min() < 1.0:
            if alpha.max() <= 0.0:
                raise UploadError("the image is fully transparent: nothing to encode")
            visible = float((lum * alpha).sum() / alpha.sum())
            bg = 0.0 if visible > 0.5 else 1.0
            notes.append(f"transparent pixels composited onto {'black' if bg == 0 else 'white'}")
            lum = lum * alpha + bg * (1.0 - alpha)
    return np.clip(lum, 0, 1)


def _resize(a: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Antialiased resize of a float image to (width, height) (Pillow scales its filter support
    when shrinking, so a large photo does not alias)."""
    im = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))
    return np.clip(np.asarray(im.resize(size_wh, Image.Resampling.LANCZOS), dtype=np.float64), 0, 1)


def read_image(data: bytes, name: str = "upload") -> tuple[np.ndarray, list[str], str, tuple[int, int]]:
    """Decode an uploaded file: grayscale (h, w) float in [0, 1] (shrunk so the longer side is
    at most ``WORK_SIDE``), notes about the file, its format and its original (w, h)."""
    im = _open(data, name)
    fmt, size = FORMATS[im.format], im.size
    notes: list[str] = []
    n_frames = getattr(im, "n_frames", 1)
    try:
        if n_frames > 1:
            notes.append(f"animated ({n_frames} frames): using the first frame")
            im.seek(0)
        if im.format == "JPEG":
            im.draft(im.mode, (WORK_SIDE, WORK_SIDE))  # decode at a reduced scale: much faster
        im.load()
        im = ImageOps.exif_transpose(im) or im  # phone photos carry their rotation in EXIF
        gray = _to_gray(im, notes)
    except UploadError as e:
        raise UploadError(f"{name}: {e}") from None
    except Exception as e:  # noqa: BLE001 - truncated/corrupt data raises OSError, SyntaxError, ...
        raise UploadError(f"{name}: could not decode the image (truncated or corrupt?): {e}") from None
    h, w = gray.shape
    if max(h, w) > WORK_SIDE:
        s = WORK_SIDE / max(h, w)
        gray = _resize(gray, (max(1, round(w * s)), max(1, round(h * s))))
    return gray.astype(np.float32), notes, fmt, size


# --- the two styles -------------------------------------------------------------------------

def _border(a: np.ndarray) -> np.ndarray:
    """Pixels of the outer frame (5% of each side, at least 1 px): where the background is."""
    h, w = a.shape
    bh, bw = max(1, h // 20), max(1, w // 20)
    return np.concatenate([a[:bh].ravel(), a[-bh:].ravel(), a[:, :bw].ravel(), a[:, -bw:].ravel()])


def mnist_style(gray: np.ndarray, out_shape: tuple[int, int] = (28, 28), name: str = "upload") -> list[Step]:
    """MNIST's own recipe applied to a grayscale image (h, w): the list of steps, the last one
    the model input ``out_shape`` (28 x 28). Raises :class:`UploadError` if there is no ink."""
    steps = [Step("Grayscale", gray.astype(np.float32), f"{gray.shape[1]}x{gray.shape[0]}")]
    a = gray.astype(np.float64)
    bg = float(np.median(_border(a)))
    if bg > 0.5:
        a = 1.0 - a
        steps.append(Step("Inverted", a.astype(np.float32), "light background: ink made light on dark, as in MNIST"))
    else:
        steps.append(Step("Polarity kept", a.astype(np.float32), "dark background: ink already light on dark"))
    lo, hi = float(np.median(_border(a))), float(a.max())
    if hi - lo < 0.05:
        raise UploadError(f"{name}: no ink found: the image is blank (nearly uniform)")
    a = np.clip((a - lo) / (hi - lo), 0, 1)
    # A 20% floor drops paper texture and JPEG noise; rescaling keeps stroke edges smooth.
    a = np.clip((a - 0.2) / 0.8, 0, 1)
    steps.append(Step("Levels", a.astype(np.float32), "background to 0, strongest ink to 1, faint noise removed"))
    rows, cols = np.nonzero(a > 0)
    if rows.size == 0:
        raise UploadError(f"{name}: no ink found after removing the background")
    a = a[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    steps.append(Step("Cropped to ink", a.astype(np.float32), f"bounding box {a.shape[1]}x{a.shape[0]}"))
    H, W = out_shape
    box = max(1, round(min(H, W) * MNIST_BOX))
    h, w = a.shape
    s = box / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    a = _resize(a, (nw, nh))
    if a.max() > 0:
        a = a / a.max()  # thin pen strokes fade when shrunk; MNIST strokes peak at full intensity
    steps.append(Step(f"Scaled to {box} px", a.astype(np.float32), f"{nw}x{nh}, aspect ratio kept"))
    total = a.sum()
    cy = float((a.sum(1) * np.arange(nh)).sum() / total) if total > 0 else (nh - 1) / 2
    cx = float((a.sum(0) * np.arange(nw)).sum() / total) if total > 0 else (nw - 1) / 2
    # Put the centre of mass at the field's centre, but never push ink out of the field.
    top = int(np.clip(round((H - 1) / 2 - cy), 0, H - nh))
    left = int(np.clip(round((W - 1) / 2 - cx), 0, W - nw))
    out = np.zeros((H, W), np.float64)
    out[top : top + nh, left : left + nw] = a
    steps.append(Step(f"Centred in {H}x{W}", out.astype(np.float32), "by centre of mass: the model input"))
    return steps


def fit_style(gray: np.ndarray, out_shape: tuple[int, int] = (28, 20)) -> list[Step]:
    """Centre-crop a grayscale image (h, w) to the aspect ratio of ``out_shape`` (H, W) and
    resize to it: the steps, the last one the model input."""
    steps = [Step("Grayscale", gray.astype(np.float32), f"{gray.shape[1]}x{gray.shape[0]}")]
    H, W = out_shape
    h, w = gray.shape
    if h / w > H / W:  # too tall: crop rows
        ch, cw = max(1, round(w * H / W)), w
    else:
        ch, cw = h, max(1, round(h * W / H))
    top, left = (h - ch) // 2, (w - cw) // 2
    a = gray[top : top + ch, left : left + cw]
    steps.append(Step("Centre-cropped", a.astype(np.float32), f"{cw}x{ch}, the model's {W}:{H} aspect ratio"))
    out = _resize(a, (W, H))
    steps.append(Step(f"Resized to {W}x{H}", out.astype(np.float32), "the model input"))
    return steps


def prepare(data: bytes, style: str, out_shape: tuple[int, int], name: str = "upload") -> Prepared:
    """Uploaded bytes -> :class:`Prepared` for a model taking ``out_shape`` (H, W) images.
    ``style`` is ``mnist`` or ``fit`` (see :func:`style_for_dataset`)."""
    if style not in ("mnist", "fit"):
        raise ValueError(f"style must be 'mnist' or 'fit', got {style!r}")
    gray, notes, fmt, size = read_image(data, name)
    steps = mnist_style(gray, tuple(out_shape), name) if style == "mnist" else fit_style(gray, tuple(out_shape))
    return Prepared(x=steps[-1].image, steps=steps, notes=notes, format=fmt, size=size)
