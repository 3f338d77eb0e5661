"""Tests for trainer.attributes: Morpho-MNIST morphometrics on drawn shapes of known size."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from trainer.attributes import (
    ATTRIBUTES,
    DESCRIPTIONS,
    LABELS,
    MEASURES,
    UNITS,
    measure_batch,
    measure_image,
)
from trainer.data import default_data_dir


def draw_bar(width: float, height: float, slant: float = 0.0, size=(28, 28),
             centre=(14.0, 14.0), supersample: int = 8) -> np.ndarray:
    """Anti-aliased parallelogram, as a handwritten stroke is after MNIST's own anti-aliasing.

    A bar `width` px wide (horizontally) and `height` px tall, centred at `centre` (y, x) in
    continuous coordinates (pixel k covers [k, k + 1)), its top shifted right by
    tan(slant) * height / 2 and its bottom left by the same, so slant > 0 leans right.
    Returns (H, W) float in [0, 1]: each pixel's covered fraction, from an 8x supersampled grid.
    """
    h, w = size
    cy, cx = centre
    ys = (np.arange(h * supersample) + 0.5) / supersample
    xs = (np.arange(w * supersample) + 0.5) / supersample
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    left = cx - width / 2 - np.tan(slant) * (yy - cy)
    inside = (xx >= left) & (xx < left + width) & (np.abs(yy - cy) < height / 2)
    return inside.reshape(h, supersample, w, supersample).mean(axis=(1, 3))


def test_constants_cover_every_measure():
    assert set(ATTRIBUTES) <= set(MEASURES)
    for table in (UNITS, LABELS, DESCRIPTIONS):
        assert set(table) == set(MEASURES)
    assert UNITS["slant"] == "rad" and UNITS["thickness"] == "px"


@pytest.mark.parametrize("width,height", [(2, 16), (3, 20), (4, 18), (5, 12)])
def test_vertical_bar_has_its_drawn_size(width, height):
    # Odd widths centred on a pixel centre, even ones on a pixel edge: edges on pixel borders.
    img = draw_bar(width, height, centre=(14.0, 14.0 + 0.5 * (width % 2)))
    m = measure_image(img)
    assert m["thickness"] == pytest.approx(width, abs=0.5)
    assert m["slant"] == pytest.approx(0.0, abs=1e-6)
    # Default extents hold the central 98% of the ink, so they come out ~2% short.
    assert m["height"] == pytest.approx(height, abs=0.75)
    assert m["width"] == pytest.approx(width, abs=0.3)
    assert m["area"] == pytest.approx(width * height, rel=0.05)
    # A stroke's skeleton is its centre line, shortened by about the width at the two ends.
    assert height - width - 1 <= m["length"] <= height


def test_full_bounding_box_of_filled_rectangle_is_exact():
    img = np.zeros((28, 28))
    img[6:22, 9:15] = 1.0  # 16 rows x 6 columns
    m = measure_image(img, bound_frac=0.0)
    assert m["height"] == pytest.approx(16.0, abs=0.25)
    assert m["width"] == pytest.approx(6.0, abs=0.25)
    assert m["area"] == pytest.approx(96.0, rel=0.02)
    assert m["thickness"] == pytest.approx(6.0, abs=0.5)


def test_non_square_images():
    img = np.zeros((28, 20))  # Frey-face frame shape
    img[4:24, 6:10] = 1.0
    m = measure_image(img, bound_frac=0.0)
    assert (m["height"], m["width"]) == pytest.approx((20.0, 4.0), abs=0.25)
    assert m["thickness"] == pytest.approx(4.0, abs=0.5)


@pytest.mark.parametrize("angle", [-0.5, -0.25, 0.15, 0.35, 0.6])
def test_sheared_bar_slant_and_deslanted_size(angle):
    img = draw_bar(3, 20, slant=angle)
    m = measure_image(img)
    assert m["slant"] == pytest.approx(angle, abs=0.05)
    # Deslanted, the parallelogram is the upright 3 x 20 bar again (pixel staircases left by
    # drawing it on the grid add a few tenths to the width).
    assert m["width"] == pytest.approx(3.0, abs=0.4)
    assert m["height"] == pytest.approx(20.0, abs=0.75)
    # Thickness is measured across the stroke: 3 px horizontally is 3 cos(angle) across.
    assert m["thickness"] == pytest.approx(3.0 * np.cos(angle), abs=0.5)


def test_sign_convention_right_lean_is_positive():
    right = measure_image(draw_bar(3, 20, slant=0.3))["slant"]
    left = measure_image(draw_bar(3, 20, slant=-0.3))["slant"]
    assert right > 0.2 and left < -0.2
    assert right == pytest.approx(-left, abs=1e-3)
    # The mirror image of a right-leaning digit leans left by the same angle.
    digit = draw_bar(3, 20, slant=0.3) + draw_bar(10, 3, centre=(6.0, 16.0))
    digit = np.clip(digit, 0, 1)
    assert measure_image(digit[:, ::-1])["slant"] == pytest.approx(
        -measure_image(digit)["slant"], abs=1e-6)


def test_thicker_strokes_measure_thicker():
    thick = [measure_image(draw_bar(w, 18, slant=0.2))["thickness"] for w in (1.5, 2.5, 3.5, 4.5)]
    assert np.all(np.diff(thick) > 0.5), thick


def test_wider_and_taller_shapes_measure_wider_and_taller():
    widths = [measure_image(draw_bar(w, 10))["width"] for w in (4, 8, 12)]
    heights = [measure_image(draw_bar(4, h))["height"] for h in (8, 14, 20)]
    assert np.all(np.diff(widths) > 3.5) and np.all(np.diff(heights) > 5.5)


def test_empty_image_gives_nan_not_a_crash():
    for img in (np.zeros((28, 28)), np.zeros((28, 28), np.uint8), np.full((28, 28), 0.3),
                np.full((28, 28), 0.02) + 0.05 * (np.arange(28) == 3)):
        m = measure_image(img)
        assert set(m) == set(MEASURES)
        assert all(np.isnan(v) for v in m.values()), m


def test_uint8_float_and_bool_inputs_agree():
    img = draw_bar(3, 18, slant=0.25) > 0.5
    as_float = measure_image(img.astype(np.float64))
    as_uint8 = measure_image((img * 255).astype(np.uint8))
    as_bool = measure_image(img)
    for k in MEASURES:
        assert as_uint8[k] == pytest.approx(as_float[k], abs=1e-4)
        assert as_bool[k] == pytest.approx(as_float[k], abs=1e-4)


def test_batch_equals_per_image_results():
    rng = np.random.default_rng(0)
    images = [draw_bar(rng.uniform(1.5, 5), rng.uniform(8, 22), slant=rng.uniform(-0.6, 0.6),
                       centre=(rng.uniform(12, 16), rng.uniform(11, 17))) for _ in range(7)]
    images.insert(3, np.zeros((28, 28)))  # an empty one in the middle must not shift the rest
    images.append(np.clip(images[0] + draw_bar(12, 2.5, centre=(6.0, 14.0)), 0, 1))
    batch = measure_batch(np.stack(images))
    for k in MEASURES:
        assert batch[k].shape == (len(images),) and batch[k].dtype == np.float64
    for i, img in enumerate(images):
        single = measure_image(img)
        for k in MEASURES:
            np.testing.assert_allclose(batch[k][i], single[k], rtol=1e-9, atol=1e-9,
                                       err_msg=f"image {i}, {k}")
    assert np.isnan(batch["slant"][3]) and np.isnan(batch["slant"]).sum() == 1


def test_batch_larger_than_one_chunk_and_empty_batch():
    base = draw_bar(3, 18, slant=0.3)
    shifted = np.stack([np.roll(base, s, axis=1) for s in range(-4, 5)] * 40)  # 360 images
    res = measure_batch(shifted)
    # Translation changes nothing: same shape everywhere in the frame.
    for k in MEASURES:
        assert np.ptp(res[k]) < 1e-6, k
    empty = measure_batch(np.zeros((0, 28, 28)))
    assert all(v.shape == (0,) for v in empty.values())


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match=r"measure_image: expected an image of shape \(H, W\)"):
        measure_image(np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match=r"measure_batch: expected images of shape \(N, H, W\)"):
        measure_batch(np.zeros((28, 28)))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        measure_image(np.full((28, 28), 255.0))
    with pytest.raises(ValueError, match="NaN"):
        measure_image(np.full((28, 28), np.nan))
    with pytest.raises(TypeError, match="dtype"):
        measure_image(np.zeros((28, 28), np.int32))
    with pytest.raises(ValueError, match="scale"):
        measure_image(np.zeros((28, 28)), scale=0)


def _read_idx_images(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n, h, w = np.frombuffer(raw, ">u4", count=3, offset=4)
    return np.frombuffer(raw, np.uint8, offset=16).reshape(int(n), int(h), int(w))


@pytest.mark.slow
def test_mnist_test_set_distribution_is_sane():
    path = default_data_dir() / "mnist" / "t10k-images-idx3-ubyte.gz"
    if not path.exists():
        pytest.skip(f"MNIST test images not found at {path}")
    images = _read_idx_images(path)
    res = measure_batch(images)
    for k in MEASURES:
        assert not np.isnan(res[k]).any(), k
    assert 2.0 <= np.median(res["thickness"]) <= 3.0
    assert np.median(np.abs(res["slant"])) < 0.5
    assert 15.0 <= np.median(res["height"]) <= 20.0
    assert 8.0 <= np.median(res["width"]) <= 16.0
    # MNIST's digits lean right on average (Morpho-MNIST reports a mean slant of ~0.1 rad).
    assert 0.0 < np.median(res["slant"]) < 0.25
    # Upright, a "1" is the narrowest digit and a "0" wider than the typical digit.
    labels_path = default_data_dir() / "mnist" / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(labels_path, "rb") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    med_width = [np.median(res["width"][labels == d]) for d in range(10)]
    assert int(np.argmin(med_width)) == 1
    assert med_width[0] > np.median(res["width"])
