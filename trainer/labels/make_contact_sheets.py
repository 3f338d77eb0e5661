"""Render numbered contact sheets of Frey Face frames for hand labelling.

The sheets are what the annotator looked at to write ``frey_labels.csv``
(see README.md beside this file). They are written outside the repository
(default ``/tmp/frey_sheets``) because they are derived from the dataset.

Three kinds of output:

* labelling sheets (``sheet_XX.png``): the selected frames (every ``--step``-th
  frame, 0, 5, 10, ... 1960 by default) in frame order, ``--cols`` x ``--rows``
  (8 x 4) per sheet, each frame upscaled ``--scale`` (7) times, bicubic, with
  its number under it;
* check sheets (``check_<attr>_<value>_XX.png``, only with ``--labels CSV``):
  the same frames grouped by their label in that CSV, 10 x 5 per sheet at 6x,
  so a frame that does not belong to its group stands out;
* zoom sheets (``zoom_XX.png``, only with ``--zoom N [N ...]``): any frames,
  5 x 2 per sheet at 10x, used to calibrate what "turned" and "smiling" look
  like and to settle doubtful frames.

Usage (from the project root)::

    python -m trainer.labels.make_contact_sheets --data-dir ../shared/data --out /tmp/frey_sheets
    python -m trainer.labels.make_contact_sheets --data-dir ../shared/data --out /tmp/frey_sheets \
        --labels trainer/labels/frey_labels.csv
    python -m trainer.labels.make_contact_sheets --data-dir ../shared/data --out /tmp/frey_zoom \
        --no-frame-sheets --zoom 125 1450 1600
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from trainer.data import FREY_N_FRAMES, FREY_SHAPE
from trainer.data import load_frey_video as load_frey_frames  # (1965, 28, 20) uint8, frame i at index i
from trainer.labels import load_frey_labels

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


def selected_frames(step: int = 5, n_frames: int = FREY_N_FRAMES) -> np.ndarray:
    """Frames chosen for labelling: 0, step, 2*step, ... below n_frames. Returns (K,) int64."""
    if step < 1:
        raise ValueError(f"--step must be >= 1, got {step}")
    return np.arange(0, n_frames, step, dtype=np.int64)


def _font(size: int) -> ImageFont.ImageFont:
    for path in FONT_CANDIDATES:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default()


def render_sheet(
    frames: np.ndarray, numbers: list[int], cols: int, scale: int, title: str = ""
) -> Image.Image:
    """Lay frames out on a grid, each with its frame number underneath.

    Args:
        frames: (K, 28, 20) uint8, K <= cols * rows of the grid (rows follow from K).
        numbers: K frame numbers printed under the frames.
        cols: frames per row.
        scale: integer upscale factor (bicubic, which keeps mouth shape readable).
        title: optional line at the top of the sheet.
    Returns:
        An RGB PIL image.
    """
    h, w = FREY_SHAPE[0] * scale, FREY_SHAPE[1] * scale
    pad, label_h = 8, 22
    title_h = 28 if title else 0
    rows = max(1, -(-len(numbers) // cols))
    sheet = Image.new("RGB", (cols * (w + pad) + pad, title_h + rows * (h + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(16)
    if title:
        draw.text((pad, 4), title, fill="black", font=_font(18))
    for k, (img, num) in enumerate(zip(frames, numbers)):
        r, c = divmod(k, cols)
        x = pad + c * (w + pad)
        y = title_h + pad + r * (h + label_h + pad)
        tile = Image.fromarray(img, mode="L").resize((w, h), Image.BICUBIC).convert("RGB")
        sheet.paste(tile, (x, y))
        text = str(num)
        tw = draw.textlength(text, font=font)
        draw.text((x + (w - tw) / 2, y + h + 2), text, fill="black", font=font)
    return sheet


def label_groups(labels_csv: Path) -> dict[str, list[int]]:
    """Group the frames of a labels CSV by value: {"smile_1": [frames], "pose_-1": [...], "ambiguous_1": [...]}."""
    labels = load_frey_labels(labels_csv)
    groups: dict[str, list[int]] = {}
    for attr in ("smile", "pose"):
        for value in np.unique(labels[attr]):
            groups[f"{attr}_{int(value)}"] = labels["frame"][labels[attr] == value].tolist()
    if labels["ambiguous"].any():
        groups["ambiguous_1"] = labels["frame"][labels["ambiguous"]].tolist()
    return groups


def write_sheets(
    images: np.ndarray, numbers: list[int], out: Path, prefix: str, cols: int, rows: int, scale: int, title: str
) -> list[Path]:
    """Write ``numbers`` as consecutive sheets ``<prefix>_XX.png``. images: (1965, 28, 20) uint8."""
    per = cols * rows
    paths = []
    for s in range(0, len(numbers), per):
        chunk = numbers[s : s + per]
        page = s // per
        img = render_sheet(images[chunk], chunk, cols, scale, f"{title}  [{page + 1}/{-(-len(numbers) // per)}]")
        path = out / f"{prefix}_{page:02d}.png"
        img.save(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None,
                   help="folder holding frey/frey_rawface.mat (default: trainer.data.default_data_dir())")
    p.add_argument("--out", default="/tmp/frey_sheets", help="output folder for PNG sheets (outside the repo)")
    p.add_argument("--step", type=int, default=5, help="label every step-th frame (default 5: 393 frames)")
    p.add_argument("--cols", type=int, default=8, help="labelling sheets: frames per row")
    p.add_argument("--rows", type=int, default=4, help="labelling sheets: rows per sheet")
    p.add_argument("--scale", type=int, default=7, help="labelling sheets: upscale factor")
    p.add_argument("--no-frame-sheets", action="store_true", help="skip the labelling sheets")
    p.add_argument("--labels", type=Path, help="labels CSV: also write check sheets grouped by label")
    p.add_argument("--zoom", type=int, nargs="*", default=[], help="frame numbers to also render at 10x")
    args = p.parse_args(argv)

    if args.step < 1 or args.cols < 1 or args.rows < 1 or args.scale < 1:
        raise SystemExit("--step, --cols, --rows and --scale must all be >= 1")
    bad = [n for n in args.zoom if not 0 <= n < FREY_N_FRAMES]
    if bad:
        raise SystemExit(f"--zoom: frame numbers must be in 0..{FREY_N_FRAMES - 1}, got {bad}")
    try:
        images = load_frey_frames(args.data_dir)
        groups = label_groups(args.labels) if args.labels is not None else {}
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if not args.no_frame_sheets:
        written += write_sheets(
            images, selected_frames(args.step).tolist(), out, "sheet", args.cols, args.rows, args.scale,
            f"Frey Face, every {args.step}th frame",
        )
    if groups:
        names = {"smile_1": "smiling", "smile_0": "not smiling", "pose_-1": "turned LEFT (viewer)",
                 "pose_0": "frontal", "pose_1": "turned RIGHT (viewer)", "ambiguous_1": "ambiguous"}
        for key, frames in sorted(groups.items()):
            written += write_sheets(
                images, frames, out, f"check_{key}", 10, 5, 6,
                f"check: {names.get(key, key)} ({len(frames)} frames)",
            )
    if args.zoom:
        written += write_sheets(images, args.zoom, out, "zoom", 5, 2, 10, "zoom")
    print(f"wrote {len(written)} sheets to {out}")


if __name__ == "__main__":
    main()
