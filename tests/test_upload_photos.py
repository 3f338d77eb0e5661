"""Photographs of digits on paper (tests/photos.py makes them) become MNIST-like model inputs: the
ink box is MNIST-sized and the ink is where the clean rendering of the same strokes puts it.
Drawings from the Draw tab and MNIST's own digits go through the same steps unharmed."""

from __future__ import annotations

import functools
import gzip
import io

import numpy as np
import pytest
from PIL import Image

from explorer import photo
from explorer.preprocess import prepare
from tests import photos

INK = 0.2  # a model-input pixel above this is ink


@functools.cache
def _scene(name: str, seed: int) -> tuple[bytes, bytes]:
    return photos.scene(name, seed)


def _ink_box(x: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(x > INK)
    return int(np.ptp(rows)) + 1, int(np.ptp(cols)) + 1


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ma, mb = a > INK, b > INK
    return float((ma & mb).sum() / (ma | mb).sum())


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(photos.SCENES))
def test_photo_becomes_an_mnist_digit(name, seed):
    shot, clean = _scene(name, seed)
    p = prepare(shot, "mnist", (28, 28), name="photo.jpg")
    ref = prepare(clean, "mnist", (28, 28)).x
    assert 18 <= max(_ink_box(p.x)) <= 20, _ink_box(p.x)
    assert _iou(p.x, ref) >= 0.8
    steps = {s.title: s for s in p.steps}
    assert "Inverted" in steps and "Paper lighting" in steps and "Ink found" in steps  # every step is shown
    # The corners of the model input are clean background (no lighting gradient left as "ink").
    assert p.x[:4, :4].max() == 0 and p.x[-4:, -4:].max() == 0


def test_small_digit_is_cut_from_the_full_resolution_frame():
    shot, _ = _scene("small digit, 4000x3000", 0)
    p = prepare(shot, "mnist", (28, 28))
    work = p.steps[0].image
    assert max(work.shape) == photo.WORK_SIDE and p.size == (4000, 3000)
    found = next(s for s in p.steps if s.title == "Ink found")
    rows, cols = np.nonzero(found.image == 1.0)
    crop = next(s for s in p.steps if s.title == "Cropped to ink").image
    # The digit is about 35 px tall on the 512 px copy, but 260 px in the photo: the cut keeps detail.
    assert np.ptp(rows) + 1 < 40 and max(crop.shape) >= 0.8 * photo.CROP_SIDE


def test_specks_and_lighting_are_not_the_digit():
    rng = np.random.default_rng(3)
    cov = photos.ink("7", (800, 600), (300, 150, 300))
    for y, x in rng.integers(20, 580, (25, 2)):  # pencil dots and dust all over the sheet
        r = rng.integers(2, 6)
        cov[y - r : y + r, x - r : x + r] = np.maximum(cov[y - r : y + r, x - r : x + r], 0.9)
    buf = io.BytesIO()
    Image.fromarray(np.rint(255 * (1 - cov)).astype(np.uint8)).save(buf, "PNG")
    p = prepare(buf.getvalue(), "mnist", (28, 28))
    ref = prepare(photos.clean("7", (800, 600), (300, 150, 300)), "mnist", (28, 28)).x
    assert _iou(p.x, ref) >= 0.9
    assert "specks dropped" in next(s.note for s in p.steps if s.title == "Ink found")


def test_a_digit_in_two_pieces_is_kept_whole():
    frame, box = (600, 600), (200, 100, 400)
    p = prepare(photos.photo("5, lifted bar", frame, box, noise=0.02), "mnist", (28, 28))
    rows, _ = np.nonzero(p.x > INK)
    assert np.ptp(rows) + 1 >= 18  # the bar is in: the body alone would be the 20 px box's lower 80%
    assert _iou(p.x, prepare(photos.clean("5, lifted bar", frame, box), "mnist", (28, 28)).x) >= 0.8


def test_drawing_pad_stroke_is_encoded_like_its_photo():
    """The Draw tab sends white strokes on black (280 px, an 18 px pen): polarity kept, same digit."""
    frame, box = (280, 280), (40, 30, 220)
    cov = photos.ink("2", frame, box, stroke=18 / 220)
    buf = io.BytesIO()
    Image.fromarray(np.rint(255 * cov).astype(np.uint8)).save(buf, "PNG")
    p = prepare(buf.getvalue(), "mnist", (28, 28), name="drawing")
    assert p.steps[2].title == "Polarity kept"
    assert max(_ink_box(p.x)) == 20
    assert _iou(p.x, prepare(photos.clean("2", frame, box, 18 / 220), "mnist", (28, 28)).x) >= 0.9


@pytest.mark.slow
def test_mnist_digits_come_back_as_themselves(shared_data_dir):
    """MNIST's own test digits, uploaded at 10x as white-on-black or black-on-white PNGs, come out
    close to the originals (the recipe is MNIST's; only resampling differs)."""
    with gzip.open(shared_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    diffs = []
    for i in range(0, 10000, 250):
        for invert in (False, True):
            img = np.kron(x[i], np.ones((10, 10), np.uint8))
            buf = io.BytesIO()
            Image.fromarray(255 - img if invert else img).save(buf, "PNG")
            got = prepare(buf.getvalue(), "mnist", (28, 28)).x
            assert max(_ink_box(got)) in (19, 20)
            diffs.append(float(np.abs(got - x[i] / 255).mean()))
    # Measured: 0.063 on average for this recipe and for the one before photographs were handled.
    assert np.mean(diffs) < 0.08
