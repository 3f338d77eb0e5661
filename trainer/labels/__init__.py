"""Hand-made labels for Frey Face frames (smile and head pose).

``frey_labels.csv`` beside this file holds one row per labelled frame; README.md
says how the labels were made. Conventions:

* ``smile``: 1 clearly smiling, 0 anything else (neutral, frown, speech, pout);
* ``pose``: -1 head turned to the viewer's left, 0 frontal, 1 turned to the
  viewer's right ("viewer's left" = the nose points towards the left edge of
  the image);
* ``ambiguous``: 1 where the annotator could not tell; such rows still carry
  a best guess, and ``load_frey_labels(drop_ambiguous=True)`` leaves them out.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from trainer.data import FREY_N_FRAMES

LABELS_PATH = Path(__file__).with_name("frey_labels.csv")
COLUMNS = ("frame", "smile", "pose", "ambiguous", "note")
_ALLOWED = {"smile": {0, 1}, "pose": {-1, 0, 1}, "ambiguous": {0, 1}}


def load_frey_labels(path: str | Path = LABELS_PATH, drop_ambiguous: bool = False) -> dict[str, np.ndarray]:
    """Read and validate the Frey Face labels CSV.

    Args:
        path: CSV with header ``frame,smile,pose,ambiguous,note``.
        drop_ambiguous: leave out rows flagged ambiguous.
    Returns:
        dict of equal-length (K,) arrays sorted by frame: ``frame`` int64 in
        0..1964, ``smile`` int64 in {0,1}, ``pose`` int64 in {-1,0,1},
        ``ambiguous`` bool, ``note`` object array of str.
    Raises:
        ValueError: the file is malformed (message names the file and row).
    """
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(header) != COLUMNS:
            raise ValueError(f"{path}: expected header {','.join(COLUMNS)}, got {header}")
        cols: dict[str, list] = {c: [] for c in COLUMNS}
        for lineno, row in enumerate(reader, start=2):
            if len(row) != len(COLUMNS):
                raise ValueError(f"{path}:{lineno}: expected {len(COLUMNS)} fields, got {len(row)}")
            try:
                frame, smile, pose, amb = (int(v) for v in row[:4])
            except ValueError:
                raise ValueError(
                    f"{path}:{lineno}: frame, smile, pose, ambiguous must be integers, got {row[:4]}") from None
            if not 0 <= frame < FREY_N_FRAMES:
                raise ValueError(f"{path}:{lineno}: frame must be in 0..{FREY_N_FRAMES - 1}, got {frame}")
            for name, value in (("smile", smile), ("pose", pose), ("ambiguous", amb)):
                if value not in _ALLOWED[name]:
                    raise ValueError(f"{path}:{lineno}: {name} must be one of {sorted(_ALLOWED[name])}, got {value}")
            for name, value in zip(COLUMNS, (frame, smile, pose, amb, row[4])):
                cols[name].append(value)
    if not cols["frame"]:
        raise ValueError(f"{path}: no label rows")
    frame = np.asarray(cols["frame"], dtype=np.int64)
    uniq, counts = np.unique(frame, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{path}: duplicate frames {uniq[counts > 1].tolist()}")
    order = np.argsort(frame)
    out = {
        "frame": frame[order],
        "smile": np.asarray(cols["smile"], dtype=np.int64)[order],
        "pose": np.asarray(cols["pose"], dtype=np.int64)[order],
        "ambiguous": np.asarray(cols["ambiguous"], dtype=bool)[order],
        "note": np.asarray(cols["note"], dtype=object)[order],
    }
    if drop_ambiguous:
        keep = ~out["ambiguous"]
        out = {k: v[keep] for k, v in out.items()}
    return out
