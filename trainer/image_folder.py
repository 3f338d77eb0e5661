"""A folder of images as a dataset: any images Pillow reads, grayscale, resized, labels from
sub-folders, a stratified train/test split; and :func:`to_gray`, the one Pillow-to-grayscale
converter shared with the app's uploads (``explorer/preprocess.py``).

:func:`load_image_folder` holds the whole folder in memory (``python -m trainer evaluate`` and
small folders); training reads a folder through :mod:`trainer.folder_cache`, which decodes it
once with these same functions into a memory-mapped cache.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from trainer.data import DataError, DataWarning, ImageDataset, one_line

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def to_gray(img, background: int | str = 255, notes: list[str] | None = None):
    """A decoded Pillow image of any mode -> an 8-bit grayscale ("L") Pillow image, turned upright
    by its EXIF orientation. The one converter of the trainer's image folders and the app's uploads
    (``explorer/preprocess.py``).

    Luma is ITU-R 601 (Pillow's "L"; CMYK, LAB, HSV and YCbCr through RGB); 16-bit images keep
    their top 8 bits; float images are read as [0, 1] (or [0, 255] if any value exceeds 1).
    Transparent pixels show ``background``: a gray level 0..255 (255: white paper), or
    ``"contrast"``: black or white, whichever differs more from the visible pixels' mean, so a
    white pen on a transparent sheet stays visible (a fully transparent image then raises
    ValueError). Stays in 8 bits: a 25-megapixel RGBA image costs three 25 MB planes, no floats.
    ``notes`` (if given) collects one-line remarks for the user (16-bit, CMYK, transparency).
    """
    from PIL import ExifTags, Image, ImageOps

    notes = [] if notes is None else notes
    orientation = img.getexif().get(ExifTags.Base.Orientation, 1)  # before converting: conversions may drop it
    mode = img.mode
    if mode in ("RGBa", "La", "PA") or (mode == "P" and "transparency" in img.info):
        img, mode = img.convert("RGBA"), "RGBA"  # un-premultiplied, palette transparency as alpha
    alpha = img.getchannel("A") if mode in ("LA", "RGBA") else None
    if mode.startswith("I"):  # I;16, I;16B, ... and 32-bit I (some 16-bit files open as I)
        a = np.asarray(img)
        if a.dtype.kind == "i":  # 32-bit: clip to 16 bits (no copies for the usual unsigned 16-bit)
            a = np.clip(a, 0, 65535 if a.max(initial=0) > 255 else 255)
        if a.max(initial=0) > 255 or mode.startswith("I;16"):
            notes.append("16-bit image: kept the top 8 of 16 bits")
            a = a >> 8
        gray = Image.fromarray(a.astype(np.uint8))
    elif mode == "F":
        a = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        a = np.clip(a * 255.0 if a.max(initial=0) <= 1.0 else a, 0, 255)
        gray = Image.fromarray(np.rint(a).astype(np.uint8))
    elif mode in ("LAB", "YCbCr"):  # Pillow has no direct conversion (LAB) or a different one (YCbCr)
        gray = img.convert("RGB").convert("L")
    else:  # L, 1, P, RGB, RGBX, LA, RGBA, HSV, and CMYK (line by line through RGB: no RGB copy)
        if mode == "CMYK":
            notes.append("CMYK image: converted to RGB")
        gray = img if mode == "L" else img.convert("L")
    if alpha is not None and alpha.getextrema()[0] < 255:
        if background == "contrast":
            if alpha.getextrema()[1] == 0:
                raise ValueError("the image is fully transparent: nothing to encode")
            # The visible pixels' mean gray level, on a copy of at most about a megapixel.
            k = max(1, int(np.ceil(np.sqrt(gray.width * gray.height / 1e6))))
            g, w = (np.asarray(c.reduce(k), dtype=np.float32) for c in (gray, alpha))
            background = 0 if float((g * w).sum() / max(float(w.sum()), 1.0)) > 127.5 else 255
            notes.append(f"transparent pixels composited onto {'black' if background == 0 else 'white'}")
        gray.paste(int(background), None, ImageOps.invert(alpha))  # gray*alpha + background*(1 - alpha)
    # Phone photos carry their rotation in EXIF: turn the 8-bit result as ImageOps.exif_transpose
    # would turn the (four times larger) original.
    T = Image.Transpose
    turn = {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE, 6: T.ROTATE_270,
            7: T.TRANSVERSE, 8: T.ROTATE_90}.get(orientation)
    return gray if turn is None else gray.transpose(turn)


def _load_image(path: Path, size_hw: tuple[int, int]) -> np.ndarray:
    """Open, convert to gray and resize (Lanczos, in float) to ``size_hw``; (H, W) uint8."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        gray = np.asarray(to_gray(img), dtype=np.float32)
    h, w = size_hw
    if gray.shape != (h, w):
        gray = np.asarray(Image.fromarray(gray).resize((w, h), Image.Resampling.LANCZOS), dtype=np.float32)
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def _split_indices(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask, stratified by label: round(n * test_fraction) per label, at least one
    training example per label, and at least one test example overall when possible."""
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(labels), dtype=bool)
    for lab in np.unique(labels):
        members = np.flatnonzero(labels == lab)
        k = min(int(np.floor(len(members) * test_fraction + 0.5)), len(members) - 1)
        if k > 0:
            is_test[rng.permutation(members)[:k]] = True
    if test_fraction > 0 and not is_test.any() and len(labels) >= 2:
        is_test[rng.integers(len(labels))] = True
    return is_test


def _list_images(root: Path) -> tuple[list[tuple[Path, int]], list[str] | None]:
    """The image files under ``root`` with their labels (a sub-folder's index, -1 directly in
    ``root``), hidden files and folders left out, and the class names (None without sub-folders)."""

    def visible(p: Path) -> bool:
        return not any(part.startswith(".") for part in p.relative_to(root).parts)

    def images_in(folder: Path, recursive: bool) -> list[Path]:
        it = folder.rglob("*") if recursive else folder.iterdir()
        return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and visible(p))

    class_dirs = sorted((d for d in root.iterdir() if d.is_dir() and visible(d)), key=lambda d: d.name)
    entries: list[tuple[Path, int]] = [(p, -1) for p in images_in(root, recursive=False)]
    for ci, d in enumerate(class_dirs):
        entries += [(p, ci) for p in images_in(d, recursive=True)]
    return entries, [d.name for d in class_dirs] or None


def _decode_images(
    root: Path, entries: list[tuple[Path, int]], size: tuple[int, int]
) -> tuple[list[np.ndarray], list[int], list[str], str]:
    """Decode each entry to (H, W) = ``size`` uint8: ``(images, labels, skipped files with their
    reasons, sha256 over the readable files' relative paths and bytes)``."""
    images, labels, skipped = [], [], []
    content = hashlib.sha256()
    for p, lab in entries:
        try:
            arr = _load_image(p, size)
        except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError, ...
            skipped.append(f"{p.relative_to(root)} ({type(e).__name__}: {one_line(e)})")
            continue
        rel = p.relative_to(root).as_posix()
        content.update(rel.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
        images.append(arr)
        labels.append(lab)
    return images, labels, skipped, content.hexdigest()


def load_image_folder(
    path: str | os.PathLike,
    image_size: tuple[int, int] = (28, 28),
    test_fraction: float = 0.1,
    seed: int = 0,
) -> ImageDataset:
    """Load every image under ``path`` as (H, W) = ``image_size`` uint8 grayscale.

    Formats: png, jpg/jpeg, gif, bmp, webp, tif/tiff (first frame). Images are stretched to
    ``image_size`` (no crop, no padding). If ``path`` has sub-folders, each one is a class
    (sorted names are ``label_names``; images anywhere below it get its index) and images
    directly in ``path`` get -1; without sub-folders all labels are -1 and ``label_names`` is
    None. Unreadable files are skipped with one :class:`DataWarning` listing them. The split is
    deterministic for a given ``seed``: ``round(n * test_fraction)`` random images of each label.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(
            f"{root}: not a folder; expected a folder of images (optionally one sub-folder per class)"
        )
    h, w = int(image_size[0]), int(image_size[1])
    if h < 1 or w < 1:
        raise DataError(f"image_size {image_size}: expected positive (H, W)")
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test_fraction {test_fraction}: expected 0 <= test_fraction < 1")
    entries, label_names = _list_images(root)
    images, labels, skipped, content = _decode_images(root, entries, (h, w))
    if skipped:
        shown = "; ".join(skipped[:10]) + (f"; and {len(skipped) - 10} more" if len(skipped) > 10 else "")
        warnings.warn(
            f"{root}: skipped {len(skipped)} unreadable image file(s): {shown}", DataWarning, stacklevel=2
        )
    if not images:
        raise DataError(
            f"{root}: no readable images; expected files with extensions {', '.join(IMAGE_EXTENSIONS)} "
            "(directly or in one sub-folder per class)"
        )
    x = np.stack(images)
    y = np.asarray(labels, dtype=np.int64)
    is_test = _split_indices(y, test_fraction, seed)
    return ImageDataset(
        name="folder",
        train_x=torch.from_numpy(x[~is_test]),
        train_y=torch.from_numpy(y[~is_test]),
        test_x=torch.from_numpy(x[is_test]),
        test_y=torch.from_numpy(y[is_test]),
        image_shape=(h, w),
        label_names=label_names,
        provenance={
            "dataset": "folder",
            "root": str(root.resolve()),
            "n_images": len(images),
            "n_train": int((~is_test).sum()),
            "n_test": int(is_test.sum()),
            "content_sha256": content,
            "checksum": "user-files",
            "skipped": skipped,
            "conversion": f"grayscale (alpha on white, 16-bit scaled), stretched to {h}x{w} with Lanczos",
            "split": f"per label, round(n * {test_fraction}) random images are test "
            f"(numpy default_rng seed {seed}), at least one train image per label",
        },
    )
