"""Upload preprocessing: every kind of bad file gets a clear UploadError; good files of every
awkward kind (16-bit, CMYK, palette, animated, transparent, huge) become a proper model input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from explorer import photo, preprocess
from explorer.preprocess import UploadError, prepare


def _digit(h=120, w=90, ink=0, paper=255, dtype=np.uint8) -> np.ndarray:
    """A dark "1"-like bar with a foot on light paper, off-centre, so cropping and centring
    have work to do."""
    a = np.full((h, w), paper, dtype=dtype)
    a[20:100, 30:42] = ink
    a[90:100, 20:60] = ink
    return a


def _bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_with_size(w: int, h: int) -> bytes:
    """A valid small PNG whose IHDR claims ``w x h`` pixels (CRC fixed): what a
    decompression bomb or an enormous image looks like before decoding."""
    data = bytearray(_bytes(Image.new("L", (8, 8)), "PNG"))
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", w, h)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def _check_mnist_input(x: np.ndarray) -> None:
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9
    rows, cols = np.nonzero(x > 0.05)
    assert max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) <= 21  # fits the 20 px box
    # the corners are background (ink is light on dark, as in MNIST)
    assert x[:3, :3].max() == 0 and x[-3:, -3:].max() == 0
    yy, xx = np.mgrid[:28, :28]
    cy, cx = (x * yy).sum() / x.sum(), (x * xx).sum() / x.sum()
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0  # centred by mass


# --- bad files: clear messages ----------------------------------------------------------------

@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty"),
        (b"hello, this is not an image at all" * 10, "not an image"),
        (b"\x89PNG\r\n\x1a\n", "not an image|header"),
    ],
)
def test_not_images(data, match):
    with pytest.raises(UploadError, match=match):
        prepare(data, "mnist", (28, 28), name="x.png")


def test_error_names_the_file():
    with pytest.raises(UploadError, match=r"^notes\.txt: "):
        prepare(b"plain text", "mnist", (28, 28), name="notes.txt")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated(fmt):
    data = _bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)), fmt)
    with pytest.raises(UploadError, match="truncated or corrupt"):
        prepare(data[: len(data) // 2], "mnist", (28, 28))


def test_decompression_bomb():
    with pytest.raises(UploadError, match="decompression bomb"):
        prepare(_png_with_size(40000, 40000), "mnist", (28, 28))


def test_huge_image_refused_before_decoding():
    with pytest.raises(UploadError, match="too large"):
        prepare(_png_with_size(6000, 6000), "mnist", (28, 28))


def test_too_many_bytes(monkeypatch):
    monkeypatch.setattr(preprocess, "MAX_BYTES", 1000)
    with pytest.raises(UploadError, match="MB; the limit"):
        prepare(b"x" * 2000, "mnist", (28, 28))


@pytest.mark.parametrize("size", [(1, 1), (1, 200), (5, 5)])
def test_tiny_images(size):
    with pytest.raises(UploadError, match="too small"):
        prepare(_bytes(Image.new("L", size, 128), "PNG"), "mnist", (28, 28))


def test_unsupported_format():
    with pytest.raises(UploadError, match="TIFF images are not supported"):
        prepare(_bytes(Image.fromarray(_digit()), "TIFF"), "mnist", (28, 28))


@pytest.mark.parametrize("value", [0, 255, 128])
def test_blank_image_has_no_ink(value):
    with pytest.raises(UploadError, match="no ink"):
        prepare(_bytes(Image.new("L", (50, 50), value), "PNG"), "mnist", (28, 28))


def test_fully_transparent():
    with pytest.raises(UploadError, match="fully transparent"):
        prepare(_bytes(Image.new("RGBA", (50, 50), (0, 0, 0, 0)), "PNG"), "mnist", (28, 28))


# --- awkward but good files -------------------------------------------------------------------

def test_plain_digit_light_paper():
    p = prepare(_bytes(Image.fromarray(_digit()), "PNG"), "mnist", (28, 28))
    _check_mnist_input(p.x)
    titles = [s.title for s in p.steps]
    assert titles == ["Grayscale", "Paper lighting", "Inverted", "Ink found", "Cropped to ink", "Scaled to 20 px",
                      "Centred in 28x28"]
    assert p.steps[-1].image is p.x and p.format == "PNG" and p.size == (90, 120)
    assert all(s.image.dtype == np.float32 and max(s.image.shape) <= preprocess.STEP_SIDE for s in p.steps)


def test_dark_paper_is_not_inverted():
    p = prepare(_bytes(Image.fromarray(_digit(ink=255, paper=0)), "PNG"), "mnist", (28, 28))
    assert p.steps[2].title == "Polarity kept"
    _check_mnist_input(p.x)


def test_aspect_ratio_kept():
    # a wide bar: 80 x 12 ink -> 20 px wide, about 3 px tall
    a = np.full((100, 120), 255, np.uint8)
    a[40:52, 20:100] = 0
    x = prepare(_bytes(Image.fromarray(a), "PNG"), "mnist", (28, 28)).x
    rows, cols = np.nonzero(x > 0.3)
    assert cols.max() - cols.min() + 1 in (19, 20, 21)
    assert rows.max() - rows.min() + 1 <= 5


def test_16_bit():
    a = _digit(ink=0, paper=65535, dtype=np.uint16)
    im = Image.fromarray(a)
    assert im.mode.startswith("I;16")
    p = prepare(_bytes(im, "PNG"), "mnist", (28, 28))
    assert any("16-bit" in n for n in p.notes)
    _check_mnist_input(p.x)


def test_cmyk_jpeg():
    im = Image.fromarray(_digit()).convert("CMYK")
    data = _bytes(im, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    p = prepare(data, "mnist", (28, 28))
    assert any("CMYK" in n for n in p.notes)
    _check_mnist_input(p.x)


def test_palette_with_transparency():
    im = Image.fromarray(_digit()).convert("P")
    data = _bytes(im, "PNG", transparency=255)  # the paper colour becomes transparent
    p = prepare(data, "mnist", (28, 28))
    _check_mnist_input(p.x)


def test_animated_gif_uses_first_frame():
    first = Image.fromarray(_digit())
    # blank frames (different greys, or Pillow merges them): they would fail if used
    others = [Image.fromarray(np.full((120, 90), v, np.uint8)) for v in (250, 200)]
    data = _bytes(first, "GIF", save_all=True, append_images=others, duration=100, loop=0)
    p = prepare(data, "mnist", (28, 28))
    assert any("animated (3 frames)" in n for n in p.notes)
    _check_mnist_input(p.x)


@pytest.mark.parametrize("ink_rgb, bg_word", [((0, 0, 0), "white"), ((255, 255, 255), "black")])
def test_transparent_background(ink_rgb, bg_word):
    rgba = np.zeros((120, 90, 4), np.uint8)
    mask = _digit() == 0
    rgba[mask, :3] = ink_rgb
    rgba[mask, 3] = 255
    p = prepare(_bytes(Image.fromarray(rgba), "PNG"), "mnist", (28, 28))
    assert any(f"onto {bg_word}" in n for n in p.notes)
    _check_mnist_input(p.x)


@pytest.mark.parametrize("fmt", ["JPEG", "BMP", "WEBP", "GIF"])
def test_other_formats(fmt):
    im = Image.fromarray(_digit()).convert("RGB")
    p = prepare(_bytes(im, fmt), "mnist", (28, 28))
    _check_mnist_input(p.x)


def test_large_photo_analysed_small_cut_at_full_resolution():
    a = np.kron(_digit(), np.ones((25, 25), np.uint8))  # 3000 x 2250
    data = _bytes(Image.fromarray(a), "PNG")
    gray, notes, fmt, size = preprocess.read_image(data)
    assert size == (2250, 3000) and gray.size == size and gray.mode == "L"  # 8-bit, full resolution
    p = prepare(data, "mnist", (28, 28))
    assert max(p.steps[0].image.shape) == photo.WORK_SIDE and "analysed at 384x512" in p.steps[0].note
    crop = next(s for s in p.steps if s.title == "Cropped to ink")
    assert 0.9 * photo.CROP_SIDE <= max(crop.image.shape) <= photo.CROP_SIDE  # the ink's box, a 2 px margin trimmed
    _check_mnist_input(p.x)


def test_exif_rotation_applied():
    a = np.full((60, 100), 255, np.uint8)
    a[10:20, 10:90] = 0  # a horizontal bar
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    gray, *_ = preprocess.read_image(_bytes(im, "JPEG", exif=exif.tobytes()))
    assert gray.size == (60, 100)  # displayed upright: taller than wide


def test_fit_style_frey_shape():
    g = np.random.default_rng(0).integers(0, 255, (300, 400), dtype=np.uint8)
    p = prepare(_bytes(Image.fromarray(g), "PNG"), "fit", (28, 20))
    assert p.x.shape == (28, 20) and p.x.dtype == np.float32
    assert [s.title for s in p.steps] == ["Grayscale", "Centre-cropped", "Resized to 20x28"]
    crop = p.steps[1].image
    assert abs(crop.shape[0] / crop.shape[1] - 1.4) < 0.02


def test_fit_style_keeps_intensity():
    p = prepare(_bytes(Image.new("L", (40, 56), 200), "PNG"), "fit", (28, 20))
    assert np.allclose(p.x, 200 / 255, atol=0.01)


def test_style_for_dataset():
    assert preprocess.style_for_dataset("mnist") == "mnist"
    assert preprocess.style_for_dataset("frey") == "fit"
    assert preprocess.style_for_dataset("folder") == "fit"
    with pytest.raises(ValueError):
        prepare(b"x", "nope", (28, 28))
