"""Speed of trainer.attributes, and agreement with a Morpho-MNIST-style reference pipeline.

Usage (from the project root):

    nice -n 10 .venv/bin/python -m bench.attributes_speed [--data-dir DIR]
        [--n 10000] [--n-reference 300] [--jobs 2]

Prints images/s of ``measure_batch`` on the MNIST test images (one core), on an
"11-step sweep"-sized batch (1,100 images) and, with ``--jobs 2``, split across processes; then,
on ``--n-reference`` images, how closely it agrees with the reference pipeline written below
from Morpho-MNIST's published definitions (skimage ``pyramid_expand`` upscaling,
``medial_axis`` skeleton, moments of the grey hi-res image, bounding parallelogram holding
98% of the grey mass), which is ~20x slower because of ``medial_axis``.
"""

from __future__ import annotations

import argparse
import gzip
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import morphology, transform

from trainer.attributes import MEASURES, measure_batch
from trainer.data import default_data_dir


def read_idx_images(path: Path) -> np.ndarray:
    """(N, H, W) uint8 from a gzipped IDX3 file."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if int.from_bytes(raw[:4], "big") != 0x0803:
        raise SystemExit(f"{path}: not an IDX3 uint8 image file")
    n, h, w = np.frombuffer(raw, ">u4", count=3, offset=4)
    return np.frombuffer(raw, np.uint8, offset=16).reshape(int(n), int(h), int(w))


def reference_measure(img: np.ndarray, scale: int = 4, frac: float = 0.02) -> dict[str, float]:
    """One image (H, W) uint8 measured the Morpho-MNIST way (slow: medial_axis)."""
    hires = transform.pyramid_expand(img.astype(float) / 255.0, upscale=scale, order=3)
    lo, hi = hires.min(), hires.max()
    ink = hires >= lo + 0.5 * (hi - lo)
    skel, dist = morphology.medial_axis(ink, return_distance=True, rng=0)
    # Stroke length: each skeleton pixel's links to its right, lower-left, lower, lower-right.
    links = np.array([[0, 0, 0], [0, 0, 1], [np.sqrt(2), 1, np.sqrt(2)]])
    sk = skel.astype(float)
    length = float((ndimage.correlate(sk, links, mode="constant") * sk).sum()) / scale
    # Moments of the grey hi-res image, x = column, y = row.
    y, x = np.mgrid[: hires.shape[0], : hires.shape[1]].astype(float)
    mass = hires.sum()
    xc, yc = (x * hires).sum() / mass, (y * hires).sum() / mass
    u11 = ((x - xc) * (y - yc) * hires).sum() / mass
    u02 = ((y - yc) ** 2 * hires).sum() / mass
    shear = u11 / u02
    # Bounding parallelogram: mass quantiles of the deslanted columns and of the rows.
    xs = (x - shear * (y - yc)).ravel()
    order = np.argsort(xs)
    cdf = np.cumsum(hires.ravel()[order]) / mass
    left, right = np.interp([frac / 2, 1 - frac / 2], cdf, xs[order])
    row_cdf = np.cumsum(hires.sum(axis=1)) / mass
    top, bottom = np.interp([frac / 2, 1 - frac / 2], row_cdf, np.arange(len(row_cdf)))
    return {
        "area": ink.sum() / scale**2,
        "length": length,
        "thickness": 2.0 * dist[skel].mean() / scale,
        "slant": float(np.arctan(-shear)),
        "width": (right - left) / scale,
        "height": (bottom - top) / scale,
    }


def rate(fn, n_images: int, repeats: int = 1) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_images / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(),
                        help="datasets folder holding mnist/ (default: %(default)s)")
    parser.add_argument("--n", type=int, default=10000, help="test images to time")
    parser.add_argument("--n-reference", type=int, default=300,
                        help="images to compare with the reference pipeline (0 to skip)")
    parser.add_argument("--jobs", type=int, default=1, help="also time this many processes")
    args = parser.parse_args()

    images = read_idx_images(args.data_dir / "mnist" / "t10k-images-idx3-ubyte.gz")[: args.n]
    measure_batch(images[:64])  # warm caches (upscaling matrices, imports)
    print(f"measure_batch, {len(images)} MNIST test images, 1 process: "
          f"{rate(lambda: measure_batch(images), len(images)):.0f} images/s")
    sweep = images[:1100].astype(np.float32) / 255.0
    print(f"measure_batch, {len(sweep)} float images (100 points x 11 steps): "
          f"{rate(lambda: measure_batch(sweep), len(sweep), repeats=3):.0f} images/s")
    if args.jobs > 1:
        parts = np.array_split(images, args.jobs)
        with ProcessPoolExecutor(args.jobs) as pool:
            list(pool.map(measure_batch, [p[:16] for p in parts]))  # start the workers
            print(f"measure_batch, {len(images)} images, {args.jobs} processes: "
                  f"{rate(lambda: list(pool.map(measure_batch, parts)), len(images)):.0f} images/s")

    if args.n_reference > 0:
        sub = images[: args.n_reference]
        t0 = time.perf_counter()
        ref = [reference_measure(img) for img in sub]
        ref_rate = len(sub) / (time.perf_counter() - t0)
        ours = measure_batch(sub)
        print(f"\nreference pipeline (medial_axis): {ref_rate:.0f} images/s; agreement on "
              f"{len(sub)} images:")
        print(f"{'measure':>10} {'ours med':>9} {'ref med':>9} {'med |diff|':>11} {'corr':>6}")
        for k in MEASURES:
            r = np.array([m[k] for m in ref])
            o = ours[k]
            corr = np.corrcoef(o, r)[0, 1]
            print(f"{k:>10} {np.median(o):9.3f} {np.median(r):9.3f} "
                  f"{np.median(np.abs(o - r)):11.3f} {corr:6.3f}")


if __name__ == "__main__":
    main()
