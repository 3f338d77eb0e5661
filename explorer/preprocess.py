"""An uploaded file -> the image a model sees, keeping every intermediate step for display.

Two styles:

- ``mnist``: how MNIST itself was made, for photographs of paper as much as for drawings (see
  :mod:`explorer.photo`): the ink found (polarity, the paper's lighting divided out, Otsu's
  threshold, specks dropped), cut from the full-resolution image, scaled so the longest side is
  20 px, pasted into a 28x28 field so the centre of mass sits at the centre.
- ``fit``: for faces and other photos (Frey Face). Grayscale, centre-cropped to the model's
  aspect ratio and resized to its H x W (28 x 20 for Frey Face): ``PIL.ImageOps.fit``.

Cost: the file's header is checked before anything is decoded (bytes, pixels, a JPEG too short
for its declared size); the decoded image becomes 8-bit gray at once (the trainer's converter,
:func:`trainer.image_folder.to_gray`) and stays 8-bit until it is small. Any accepted upload stays under
about 300 MB and a CPU second (``python -m bench.upload_cost``).

Every step image is a float32 array (h, w) in [0, 1]. Anything wrong with the file raises
:class:`UploadError` with a one-line message meant for the user, whatever the bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explorer import photo
from trainer.image_folder import to_gray

FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "GIF": "GIF", "BMP": "BMP", "DIB": "BMP", "WEBP": "WebP"}
UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp"]  # for st.file_uploader(type=...)
MAX_BYTES = 10 * 1024 * 1024  # the same cap as .streamlit/config.toml's maxUploadSize
MAX_PIXELS = 25_000_000  # refuse before decoding: a 5000x5000 photo is fine, a "bomb" is not
# Pillow decodes a WebP through three full RGBA copies (libwebp's canvas, a bytes copy, the image):
# about 16 bytes a pixel, so WebP gets a lower limit to stay within the memory budget.
MAX_WEBP_PIXELS = 16_000_000
MIN_SIDE = 8  # smaller than this carries no digit or face
STEP_SIDE = photo.WORK_SIDE  # step images are at most this size (they are shown at 140 px)


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

def _jpeg_ends_early(data: bytes, w: int, h: int) -> bool:
    """True if ``data`` cannot hold a ``w`` x ``h`` JPEG: with Huffman coding every 8x8 block of
    the first component costs at least one bit, so a file whose data after the first scan header
    is shorter than that ends early (libjpeg would fill the rest with grey). Arithmetic-coded
    files (rare) are not judged."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):  # SOF for arithmetic coding
            return False
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:  # start of scan: the entropy-coded data follows
            return (len(data) - (i + 2 + length)) * 8 < -(-w // 8) * -(-h // 8)
        i += 2 + length
    return False  # no scan header found where expected: the decoder will say what is wrong


def _open(data: bytes, name: str) -> Image.Image:
    """Read the header only, and refuse what is too big, too small or cannot be what it says."""
    if not data:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > MAX_BYTES:
        raise UploadError(f"{name}: the file is {len(data) / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB")
    try:
        # Lazy: reads the header, decodes nothing yet. (Between Pillow's MAX_IMAGE_PIXELS and twice
        # that it only warns; MAX_PIXELS below refuses those. No warnings filter: sessions are threads.)
        im = Image.open(io.BytesIO(data))
        fmt, (w, h) = im.format, im.size
    except Image.DecompressionBombError:
        raise UploadError(f"{name}: declares an enormous image (a decompression bomb?); refused") from None
    except UnidentifiedImageError:
        raise UploadError(f"{name}: not an image Pillow can read (expected PNG, JPEG, GIF, BMP or WebP)") from None
    except Exception as e:  # noqa: BLE001 - a malformed header can raise almost anything
        raise UploadError(f"{name}: could not read the image header ({type(e).__name__}: {e})") from None
    if fmt not in FORMATS:
        raise UploadError(f"{name}: {fmt} images are not supported (expected PNG, JPEG, GIF, BMP or WebP)")
    limit = MAX_WEBP_PIXELS if fmt == "WEBP" else MAX_PIXELS
    if w * h > limit:
        raise UploadError(
            f"{name}: {w}x{h} pixels is too large (limit {limit / 1e6:.0f} megapixels for {FORMATS[fmt]}); "
            "a decompression bomb, or a photo to shrink first"
        )
    if min(w, h) < MIN_SIDE:
        raise UploadError(f"{name}: {w}x{h} pixels is too small; need at least {MIN_SIDE}x{MIN_SIDE}")
    if fmt in ("JPEG", "MPO") and _jpeg_ends_early(data, w, h):
        raise UploadError(f"{name}: the file ends early: {len(data):,} bytes cannot hold a {w}x{h} JPEG")
    return im


def read_image(data: bytes, name: str = "upload") -> tuple[Image.Image, list[str], str, tuple[int, int]]:
    """Decode an uploaded file: an upright 8-bit grayscale ("L") Pillow image at full resolution
    (transparency composited onto black or white, whichever contrasts with the drawing), notes
    about the file, its format and its original (w, h). Raises :class:`UploadError` for anything
    that goes wrong, whatever the bytes."""
    im = _open(data, name)
    fmt, size = FORMATS[im.format], im.size
    notes: list[str] = []
    try:
        n_frames = getattr(im, "n_frames", 1)  # counting frames reads the whole file
        if n_frames > 1:
            notes.append(f"animated ({n_frames} frames): using the first frame")
            im.seek(0)
        if im.format in ("JPEG", "MPO") and im.mode in ("RGB", "L"):
            im.draft("L", im.size)  # libjpeg decodes straight to gray: a quarter of the memory
        im.load()
    except Exception as e:  # noqa: BLE001 - truncated/corrupt data raises OSError, SyntaxError, IndexError, ...
        raise UploadError(f"{name}: could not decode the image (truncated or corrupt?): {_one_line(e)}") from None
    try:
        gray = to_gray(im, background="contrast", notes=notes)
    except ValueError as e:  # fully transparent, or a mode Pillow cannot convert
        raise UploadError(f"{name}: {_one_line(e)}") from None
    except Exception as e:  # noqa: BLE001 - e.g. a corrupt EXIF block
        raise UploadError(f"{name}: could not convert the image to grayscale: {_one_line(e)}") from None
    return gray, notes, fmt, size


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:200] + ("..." if len(text) > 200 else "") if text else type(e).__name__


# --- the two styles -------------------------------------------------------------------------

def mnist_style(gray: Image.Image, out_shape: tuple[int, int] = (28, 28), name: str = "upload") -> list[Step]:
    """MNIST's recipe for an 8-bit grayscale image ``gray`` of any size (see :mod:`explorer.photo`):
    the steps, the last one the model input ``out_shape`` (H, W). Raises :class:`UploadError` if
    there is no ink."""
    work = photo.shrink(gray, photo.WORK_SIDE)
    h, w = work.shape
    size_note = f"{gray.width}x{gray.height}" + (f", analysed at {w}x{h}" if (w, h) != gray.size else "")
    steps = [Step("Grayscale", work, size_note)]
    try:
        ink = photo.find_ink(work)
    except photo.NoInk as e:
        raise UploadError(f"{name}: {e}") from None
    steps.append(Step("Paper lighting", photo.resize_float(ink.light, work.shape),
                      "estimated by a wide morphological " + ("closing" if ink.dark else "opening")))
    steps.append(Step("Inverted" if ink.dark else "Polarity kept", ink.strength,
                      "dark ink made light on black, the uneven light divided out" if ink.dark
                      else "light ink on dark: the background subtracted"))
    box = photo.ink_box(ink.kept)
    specks = f"{ink.n_dropped} speck{'' if ink.n_dropped == 1 else 's'} dropped"
    steps.append(Step("Ink found", photo.found_picture(ink, box),
                      f"threshold {ink.high:.2f} (Otsu) above the paper's noise {ink.low:.2f}; {specks}"))
    a = photo.cut(gray, work.shape, ink, box)
    rows, cols = np.nonzero(a > 0)
    if rows.size == 0:
        raise UploadError(f"{name}: no ink found after removing the background")
    a = a[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    steps.append(Step("Cropped to ink", a, f"{a.shape[1]}x{a.shape[0]}, cut from the full-resolution image"))
    return steps + _centred(a, out_shape)


def _centred(a: np.ndarray, out_shape: tuple[int, int]) -> list[Step]:
    """The last two MNIST steps for the cropped ink ``a`` (h, w): scaled so the longer side is
    20/28 of the field, then placed in ``out_shape`` (H, W) with its centre of mass at the centre."""
    from scipy import ndimage  # here, not at start-up: see explorer/photo.py

    H, W = out_shape
    box = max(1, round(min(H, W) * photo.MNIST_BOX))
    s = box / max(a.shape)
    nh, nw = max(1, round(a.shape[0] * s)), max(1, round(a.shape[1] * s))
    a = np.clip(photo.resize_float(a, (nh, nw)), 0, 1)
    if a.max() > 0:
        a = a / a.max()  # thin pen strokes fade when shrunk; MNIST strokes peak at full intensity
    scaled = Step(f"Scaled to {box} px", a, f"{nw}x{nh}, aspect ratio kept")
    cy, cx = ndimage.center_of_mass(a) if a.sum() > 0 else ((nh - 1) / 2, (nw - 1) / 2)
    # Put the centre of mass at the field's centre, but never push ink out of the field.
    top = int(np.clip(round((H - 1) / 2 - cy), 0, H - nh))
    left = int(np.clip(round((W - 1) / 2 - cx), 0, W - nw))
    out = np.zeros((H, W), np.float32)
    out[top : top + nh, left : left + nw] = a
    return [scaled, Step(f"Centred in {H}x{W}", out, "by centre of mass: the model input")]


def fit_style(gray: Image.Image, out_shape: tuple[int, int] = (28, 20)) -> list[Step]:
    """Centre-crop the 8-bit grayscale ``gray`` to the aspect ratio of ``out_shape`` (H, W) and
    resize to it (``ImageOps.fit``, in 8 bits): the steps, the last one the model input."""
    H, W = out_shape

    def fit(w: int, h: int) -> np.ndarray:
        # Box-reduce by an integer factor first, down to 3x the target: Lanczos over a 5000 px
        # image would weigh thousands of pixels per output pixel for no visible difference.
        k = max(1, int(min(gray.width / w, gray.height / h) / 3))
        im = ImageOps.fit(gray.reduce(k) if k > 1 else gray, (w, h), Image.Resampling.LANCZOS)
        return np.asarray(im, dtype=np.float32) / 255

    s = min(gray.width / W, gray.height / H, STEP_SIDE / max(H, W))  # the crop, shown at up to STEP_SIDE
    return [Step("Grayscale", photo.shrink(gray, STEP_SIDE), f"{gray.width}x{gray.height}"),
            Step("Centre-cropped", fit(max(1, round(W * s)), max(1, round(H * s))),
                 f"the model's {W}:{H} aspect ratio"),
            Step(f"Resized to {W}x{H}", fit(W, H), "the model input")]


def prepare(data: bytes, style: str, out_shape: tuple[int, int], name: str = "upload") -> Prepared:
    """Uploaded bytes -> :class:`Prepared` for a model taking ``out_shape`` (H, W) images.
    ``style`` is ``mnist`` or ``fit`` (see :func:`style_for_dataset`)."""
    if style not in ("mnist", "fit"):
        raise ValueError(f"style must be 'mnist' or 'fit', got {style!r}")
    gray, notes, fmt, size = read_image(data, name)
    steps = mnist_style(gray, tuple(out_shape), name) if style == "mnist" else fit_style(gray, tuple(out_shape))
    return Prepared(x=steps[-1].image, steps=steps, notes=notes, format=fmt, size=size)
