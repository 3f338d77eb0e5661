"""Hostile files: whatever the bytes, ``prepare`` gives a finite model input of the right shape or
raises UploadError with a one-line message naming the file. Families, not samples: any bytes,
every truncation of small valid files of each format (PNG, JPEG, GIF, WebP, BMP, TIFF; animated
ones too), random byte mutations of them, and JPEGs whose header declares far more than they hold."""

from __future__ import annotations

import functools
import io
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from explorer import preprocess
from explorer.preprocess import UploadError, prepare

# Pillow warns about corrupt EXIF and huge declared sizes; the property is about what is raised.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::PIL.Image.DecompressionBombWarning")
SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
STYLES = [("mnist", (28, 28)), ("fit", (28, 20))]


def _digit(w: int = 40, h: int = 48) -> Image.Image:
    a = np.full((h, w), 235, np.uint8)
    a[8:40, 18:24] = 20
    a[34:40, 10:30] = 20
    return Image.fromarray(a)


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


@functools.cache
def valid_files() -> dict[str, bytes]:
    """Small valid files of every format and awkward mode the app reads (and TIFF, which it refuses)."""
    g = _digit()
    rgb, rgba = g.convert("RGB"), g.convert("RGBA")
    rgba.putalpha(Image.eval(g, lambda v: 255 - v))
    frames = [g, Image.new("L", g.size, 90), Image.new("L", g.size, 160)]
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to display", as phones write it
    return {
        "png": _save(g, "PNG"),
        "png-rgba": _save(rgba, "PNG"),
        "png-16bit": _save(Image.fromarray(np.asarray(g).astype(np.uint16) * 257), "PNG"),
        "png-palette-transparent": _save(g.convert("P"), "PNG", transparency=235),
        "apng": _save(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        "jpeg": _save(rgb, "JPEG", quality=90),
        "jpeg-progressive-exif": _save(rgb, "JPEG", progressive=True, exif=exif.tobytes()),
        "jpeg-cmyk": _save(g.convert("CMYK"), "JPEG"),
        "gif-animated": _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0),
        "webp-lossless": _save(rgba, "WEBP", lossless=True),
        "webp-lossy": _save(rgb, "WEBP", quality=70),
        "webp-animated": _save(frames[0].convert("RGB"), "WEBP", save_all=True,
                               append_images=[f.convert("RGB") for f in frames[1:]]),
        "bmp": _save(g, "BMP"),
        "bmp-rgb": _save(rgb, "BMP"),
        "tiff": _save(g, "TIFF"),
    }


def check(data: bytes, style: str = "mnist", shape=(28, 28)) -> str:
    """The property: a finite [0, 1] float32 input of ``shape``, or UploadError naming the file."""
    try:
        p = prepare(data, style, shape, name="f.img")
    except UploadError as e:
        msg = str(e)
        assert msg.startswith("f.img: ") and "\n" not in msg and len(msg) < 400, msg
        return "refused"
    assert p.x.shape == shape and p.x.dtype == np.float32
    assert np.isfinite(p.x).all() and p.x.min() >= 0 and p.x.max() <= 1
    return "ok"


def test_the_valid_files_are_valid():
    outcomes = {k: check(v) for k, v in valid_files().items()}
    assert outcomes.pop("tiff") == "refused"
    assert set(outcomes.values()) == {"ok"}, outcomes


@pytest.mark.parametrize("kind", sorted(valid_files()))
def test_every_truncation(kind):
    """Every prefix of each file (the family that broke animated GIFs: n_frames read outside the try)."""
    data = valid_files()[kind]
    step = max(1, len(data) // 400)
    for n in range(0, len(data), step):
        check(data[:n])


@settings(max_examples=300, **SETTINGS)
@given(st.binary(max_size=4096), st.sampled_from(STYLES))
def test_any_bytes(data, style):
    check(data, *style)


# Positions are integers per mille of the file, not floats: torch sets the CPU's flush-to-zero
# mode, and hypothesis then refuses to draw floats.
@settings(max_examples=400, **SETTINGS)
@given(st.sampled_from(sorted(valid_files())), st.lists(st.tuples(st.integers(0, 999), st.integers(0, 255)),
                                                          max_size=8),
       st.integers(50, 1000), st.sampled_from(STYLES))
def test_mutated_files(kind, flips, keep, style):
    """Random bytes overwritten (headers included), then the tail cut at a random point."""
    data = bytearray(valid_files()[kind])
    for where, value in flips:
        data[where * len(data) // 1000] = value
    check(bytes(data[: max(1, keep * len(data) // 1000)]), *style)


@settings(max_examples=100, **SETTINGS)
@given(st.sampled_from(sorted(valid_files())), st.sampled_from([b"\x00" * 4, b"\xff" * 4, b"\x7f\xff\xff\xff"]),
       st.integers(0, 40))
def test_extreme_header_fields(kind, value, at):
    """Sizes, lengths and counts in the header replaced by 0 or huge values."""
    data = bytearray(valid_files()[kind])
    data[at : at + 4] = value
    check(bytes(data))


def _jpeg_claiming(w: int, h: int, **kw) -> bytes:
    """A 16x16 JPEG whose frame header (SOF) claims ``w`` x ``h``: the data ends early."""
    data = bytearray(_save(_digit(16, 16).convert(kw.pop("mode", "L")), "JPEG", **kw))
    i = 2
    while data[i + 1] not in (0xC0, 0xC1, 0xC2):
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    data[i + 5 : i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


@pytest.mark.parametrize("kw", [{}, {"progressive": True}, {"mode": "RGB"}, {"mode": "RGB", "progressive": True}])
@pytest.mark.parametrize("size", [(5000, 5000), (1000, 700)])
def test_jpeg_that_ends_early_is_refused(kw, size):
    with pytest.raises(UploadError, match="the file ends early"):
        prepare(_jpeg_claiming(*size, **kw), "mnist", (28, 28), name="f.jpg")


def test_webp_over_its_pixel_limit_is_refused_before_decoding():
    data = _save(Image.new("RGBA", (4100, 4100), (0, 0, 0, 0)), "WEBP", lossless=True)
    assert len(data) < 2000  # a kilobyte that would decode to 270 MB
    with pytest.raises(UploadError, match="limit 16 megapixels for WebP"):
        preprocess.prepare(data, "mnist", (28, 28))
