"""MNIST style for any picture of a digit: a photograph of paper, a drawing, a scan, an MNIST image.

MNIST's own recipe (LeCun et al.) is: light ink on black, cropped to the ink, scaled so the longer
side is 20 px, pasted into 28x28 with the centre of mass at the centre. A phone photograph first
needs the ink found, which is where a naive recipe fails: uneven lighting looks like ink, specks
and paper texture widen the crop, and shrinking the whole frame first leaves a small digit a few
pixels wide. So, with the library doing each step (scipy.ndimage, scikit-image, Pillow):

1. Work on a copy of the image shrunk to at most ``WORK_SIDE`` px (8 bits until here).
2. Polarity: compare the picture with a coarse median of itself (the paper: most of any window
   is paper); whichever side, darker or lighter, has the strong outliers is the ink.
3. Paper lighting: a morphological closing (dark ink) or opening (light ink) wider than any
   stroke removes the ink and keeps the light falling on the paper; dark ink's darkening is
   measured relative to it (a pen absorbs a fraction of the light wherever it is, so the ink
   is as strong in the dim corner as in the bright one).
4. Threshold: Otsu's between the ink and the paper, with the paper's noise (a robust MAD)
   as the floor; hysteresis keeps faint stroke parts attached to strong ones.
5. Pieces: connected components; keep the largest and those near it that are not specks.
6. Crop: the kept pieces' box, found on the shrunk mask, cut from the full-resolution image
   (shrunk only to ``CROP_SIDE``), levels set (paper 0, ink core 1), everything outside the
   kept pieces cleared.
7. Scale so the longer side is 20 px, centre by mass in 28x28.

This module finds and cuts out the ink; ``explorer/preprocess.py`` strings the steps together
for display. Every array here is float32 (h, w) in [0, 1] unless it says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# scipy.ndimage and scikit-image are imported inside the functions that use them: importing
# scipy.ndimage costs about a second, and the app imports this module at start-up.

WORK_SIDE = 512  # the ink is found on this copy; the model sees 28 px anyway
CROP_SIDE = 160  # the cut-out digit is kept at up to 8x the 20 px it will be scaled to
SMALL_SIDE = 128  # the paper's lighting is estimated at this size (smooth by nature)
MNIST_BOX = 20 / 28  # MNIST digits fit a 20x20 box inside the 28x28 field
KEEP_FRACTION = 0.08  # pieces smaller than this share of the largest are specks
NEAR = 0.5  # ... and pieces further than this (times the digit's size) from it are not the digit


class NoInk(ValueError):
    """Nothing that looks like ink: the picture is blank or nearly uniform."""


def resize_float(a: np.ndarray, shape: tuple[int, int], resample=Image.Resampling.LANCZOS) -> np.ndarray:
    """Resize a float image to ``shape`` (h, w) (Pillow widens its filter when shrinking: no aliasing)."""
    im = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), "F")
    return np.asarray(im.resize((shape[1], shape[0]), resample), dtype=np.float32)


def shrink(a: np.ndarray | Image.Image, side: int) -> np.ndarray:
    """``a``, an 8-bit ("L") Pillow image or a float array (h, w) in [0, 1], shrunk so its longer
    side is at most ``side``: float32 (h', w') in [0, 1]. An 8-bit image stays 8-bit (and is not
    copied) while Pillow shrinks it, box-reducing first."""
    h, w = (a.height, a.width) if isinstance(a, Image.Image) else a.shape
    s = min(1.0, side / max(h, w))
    shape = (max(1, round(h * s)), max(1, round(w * s)))
    if isinstance(a, Image.Image):
        im = a.resize((shape[1], shape[0]), Image.Resampling.LANCZOS, reducing_gap=3.0) if s < 1 else a
        return np.asarray(im, dtype=np.float32) / 255
    return np.clip(resize_float(a, shape), 0, 1) if s < 1 else a.astype(np.float32)


@dataclass
class Ink:
    """What was found on the working copy (h, w): the ink strength per pixel (0 = paper), the
    paper's lighting, the kept and dropped pieces, and the thresholds (in ink strength)."""

    dark: bool  # dark ink on light paper (photos, scans) rather than light on dark (drawings, MNIST)
    light: np.ndarray  # (hs, ws) float32: the paper's lighting at SMALL_SIDE
    strength: np.ndarray  # (h, w) float32 in [0, 1]
    kept: np.ndarray  # (h, w) bool
    dropped: np.ndarray  # (h, w) bool
    low: float  # the paper's noise floor
    high: float  # Otsu's threshold
    n_dropped: int


def _odd(n: float) -> int:
    return max(3, int(n) | 1)


def _upsample(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A smooth small map (hs, ws) -> (h, w), bilinear, edges aligned."""
    return resize_float(a, shape, Image.Resampling.BILINEAR)


def _strength(img: np.ndarray, light: np.ndarray, dark: bool) -> np.ndarray:
    """Ink strength of ``img`` (h, w) in [0, 1] against the paper's lighting ``light`` (same shape),
    not clipped: dark ink is the fraction of the light it absorbs, light ink how much it adds."""
    if dark:
        return 1.0 - img / np.maximum(light, 1 / 255)
    return img - light


def find_ink(work: np.ndarray) -> Ink:
    """Find the digit's ink on the working copy ``work`` (h, w) float32 in [0, 1]."""
    from scipy import ndimage
    from skimage import filters

    small = shrink(work, SMALL_SIDE)
    hs, ws = small.shape
    # 2. Polarity: a median over half the frame is the paper (no digit is mostly ink).
    tiny = shrink(small, 24)
    paper = _upsample(ndimage.median_filter(tiny, size=_odd(min(tiny.shape) / 2), mode="nearest"), work.shape)
    resid = work - paper
    dark = float(np.quantile(-resid, 0.9995)) >= float(np.quantile(resid, 0.9995))
    # 3. The paper's lighting: a closing (dark ink) removes every dark stroke narrower than a
    # quarter of the frame; smoothed, since lighting has no edges.
    k = _odd(min(hs, ws) / 4)
    light = (ndimage.grey_closing if dark else ndimage.grey_opening)(small, size=(k, k), mode="nearest")
    light = ndimage.gaussian_filter(light, sigma=k / 4, mode="nearest").astype(np.float32)
    raw = _strength(work, _upsample(light, work.shape), dark)
    # 4. The paper's noise (median and MAD of a mostly-paper picture) is the floor; Otsu's
    # threshold on what is above it separates ink from the paper's faint texture.
    med = float(np.median(raw))
    low = med + 4.0 * 1.4826 * float(np.median(np.abs(raw - med))) + 0.02
    strength = np.clip(raw, 0, 1).astype(np.float32)
    above = strength[strength > low]
    if above.size < 4 or float(above.max()) - low < 0.05:
        raise NoInk("no ink found: the image is blank (nearly uniform)")
    high = max(float(filters.threshold_otsu(above)), low + 0.02) if np.ptp(above) > 0 else low + 0.02
    mask = filters.apply_hysteresis_threshold(strength, max(low, 0.5 * high), high)
    kept, n_dropped = keep_digit(mask)
    return Ink(dark, light, strength, kept, mask & ~kept, low, high, n_dropped)


def keep_digit(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The connected pieces of ``mask`` (h, w) that make the digit, and how many were dropped:
    the largest piece (pieces touching the frame count a third: paper edges, shadows) and, largest
    first, every piece of at least KEEP_FRACTION of its area within NEAR times the digit's size."""
    from skimage import measure

    labels = measure.label(mask, connectivity=2)
    regions = sorted(measure.regionprops(labels), key=lambda r: -r.area)
    if not regions:
        return mask, 0
    h, w = mask.shape

    def score(r) -> float:
        t, lft, b, rt = r.bbox
        return r.area / (3.0 if min(t, lft) == 0 or b == h or rt == w else 1.0)

    main = max(regions, key=score)
    box = list(main.bbox)
    keep = [main.label]
    for r in regions:
        if r.label == main.label or r.area < KEEP_FRACTION * main.area:
            continue
        size = max(box[2] - box[0], box[3] - box[1])
        t, lft, b, rt = r.bbox
        gap = max(box[0] - b, t - box[2], box[1] - rt, lft - box[3], 0)
        if gap <= NEAR * size:
            keep.append(r.label)
            box = [min(box[0], t), min(box[1], lft), max(box[2], b), max(box[3], rt)]
    return np.isin(labels, keep), len(regions) - len(keep)


def ink_box(kept: np.ndarray, margin: int = 2) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the kept ink (h, w), widened by ``margin`` px for the strokes'
    soft edges (the cut is trimmed to its ink afterwards)."""
    rows, cols = np.nonzero(kept)
    h, w = kept.shape
    return (max(0, int(rows.min()) - margin), max(0, int(cols.min()) - margin),
            min(h, int(rows.max()) + 1 + margin), min(w, int(cols.max()) + 1 + margin))


def found_picture(ink: Ink, box: tuple[int, int, int, int]) -> np.ndarray:
    """The "ink found" step: kept pieces white, dropped ones grey, the crop box outlined."""
    pic = np.where(ink.kept, 1.0, np.where(ink.dropped, 0.35, 0.0)).astype(np.float32)
    im = Image.fromarray(pic, "F")
    t, lft, b, rt = box
    ImageDraw.Draw(im).rectangle((lft, t, rt - 1, b - 1), outline=0.6)
    return np.asarray(im, dtype=np.float32)


def cut(gray: Image.Image, work_shape: tuple[int, int], ink: Ink,
         box: tuple[int, int, int, int]) -> np.ndarray:
    """The digit cut from the full-resolution ``gray`` (box in work coordinates, (top, left,
    bottom, right)), shrunk to at most CROP_SIDE, as ink strength with levels set: paper 0,
    the strokes' core 1, nothing outside the kept pieces (dilated to keep their soft edges)."""
    from scipy import ndimage

    h, w = work_shape
    fy, fx = gray.height / h, gray.width / w
    t, lft, b, rt = box
    crop = gray.crop((int(lft * fx), int(t * fy), int(np.ceil(rt * fx)), int(np.ceil(b * fy))))
    s = min(1.0, CROP_SIDE / max(crop.size))
    size = (max(1, round(crop.width * s)), max(1, round(crop.height * s)))
    a = np.asarray(crop.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0), dtype=np.float32) / 255
    # Work-copy coordinates of every pixel centre of the cut, to read the lighting and the mask.
    ys = t + (np.arange(a.shape[0]) + 0.5) * (b - t) / a.shape[0] - 0.5
    xs = lft + (np.arange(a.shape[1]) + 0.5) * (rt - lft) / a.shape[1] - 0.5
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    hs, ws = ink.light.shape
    light = ndimage.map_coordinates(ink.light, [(yy + 0.5) * hs / h - 0.5, (xx + 0.5) * ws / w - 0.5],
                                    order=1, mode="nearest")
    near = ndimage.binary_dilation(ink.kept, iterations=2)
    window = ndimage.map_coordinates(near.astype(np.float32), [yy, xx], order=0, mode="nearest") > 0
    strength = np.clip(_strength(a, light, ink.dark), 0, 1)
    core = float(np.quantile(strength[window], 0.95)) if window.any() else 1.0
    lo = max(ink.low, 0.2 * core)
    return (np.clip((strength - lo) / max(core - lo, 1e-3), 0, 1) * window).astype(np.float32)
