"""Tiling, upscaling and encoding images."""

import io

import numpy as np
import pytest
from PIL import Image

from explorer import images


def test_tile_grid_and_padding():
    a = np.zeros((2, 3, 4, 5), np.float32)
    a[1, 2] = 1.0
    t = images.tile(a, pad=1, pad_value=0.5)
    assert t.shape == (2 * 4 + 1, 3 * 5 + 2)
    assert t[4, 0] == 0.5 and t[0, 5] == 0.5  # separators
    assert np.all(t[5:, 12:] == 1.0) and t[:4, :5].max() == 0


def test_tile_list_fills_last_row():
    t = images.tile(np.ones((5, 2, 2)), ncols=3, pad=0, pad_value=0.25)
    assert t.shape == (4, 6) and t[2:, 4:].max() == 0.25 and t[2:, :4].min() == 1.0
    with pytest.raises(ValueError):
        images.tile(np.zeros((2, 2)))


def test_upscale_and_display():
    img = np.array([[0.0, 1.0], [0.5, 2.0]])
    d = images.display(img, 3)
    assert d.shape == (6, 6) and d.dtype == np.uint8
    assert d[0, 0] == 0 and d[0, 5] == 255 and d[5, 0] == 128 and d[5, 5] == 255  # clipped


def test_display_size_crisp_upscale_and_shown_width():
    assert images.display_size((28, 28), 280, max_factor=8) == (8, 224)  # capped at 8 screen px per pixel
    assert images.display_size((28, 20), 220) == (8, 157)  # longer side at 220: 7.86 px per pixel
    f, w = images.display_size((376, 376), 720, max_factor=6)
    assert (f, w) == (2, 720) and 376 * f >= w  # the PNG is at least as wide as shown: only ever shrunk
    assert images.display_size((900, 300), 450) == (1, 150)  # larger than the target: shown smaller


def test_png_roundtrip():
    img = np.random.default_rng(0).random((7, 9)).astype(np.float32)
    back = np.asarray(Image.open(io.BytesIO(images.png_bytes(img, factor=2))))
    assert back.shape == (14, 18) and np.array_equal(back[::2, ::2], images.to_uint8(img))


def test_gif_frames_and_loop():
    frames = np.linspace(0, 1, 4)[:, None, None] * np.ones((4, 3, 3))
    im = Image.open(io.BytesIO(images.gif_bytes(frames, factor=1, boomerang=True)))
    assert im.n_frames == 6 and im.info.get("loop") == 0  # 4 forward, 2 back
    im2 = Image.open(io.BytesIO(images.gif_bytes(frames, factor=2, boomerang=False)))
    assert im2.n_frames == 4 and im2.size == (6, 6)
    with pytest.raises(ValueError):
        images.gif_bytes(np.zeros((0, 3, 3)))


def test_png_data_uri_decodes_to_the_upscaled_image():
    import base64

    img = np.linspace(0, 1, 12, dtype=np.float32).reshape(4, 3)
    uri = images.png_data_uri(img, factor=2)
    assert uri.startswith("data:image/png;base64,")
    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert back.shape == (8, 6) and np.array_equal(back, images.display(img, 2))


def test_letterbox_centres_and_keeps_proportions():
    img = np.ones((20, 6), np.float32)
    out = images.letterbox(img, 140, pad_value=0.5)
    assert out.shape == (140, 140)
    cols = np.where((out == 1.0).any(0))[0]
    rows = np.where((out == 1.0).any(1))[0]
    assert len(rows) == 140 and len(cols) == 42 and abs((cols[0] + cols[-1]) / 2 - 69.5) <= 1
    big = images.letterbox(np.ones((700, 350)), 140, pad_value=0.0)  # larger than the box: shrunk to fit
    assert big.shape == (140, 140)
    cols = np.where(big[70] > 0.5)[0]
    assert big[:, 70].min() > 0.5 and len(cols) == 70
