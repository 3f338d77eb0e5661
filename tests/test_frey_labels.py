"""Hand-made Frey Face labels: CSV shape, coverage, class balance, loader round-trip."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from trainer.data import FREY_BLOCK, FREY_N_FRAMES
from trainer.labels import COLUMNS, LABELS_PATH, load_frey_labels
from trainer.labels.make_contact_sheets import render_sheet, selected_frames


def test_csv_header_and_well_formed():
    lines = LABELS_PATH.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    labels = load_frey_labels()  # validates every row
    assert len(labels["frame"]) == len(lines) - 1


def test_enough_unique_frames_spread_over_sequence():
    frame = load_frey_labels()["frame"]
    assert len(np.unique(frame)) >= 300
    assert frame.min() >= 0 and frame.max() < FREY_N_FRAMES
    blocks = set((frame // 100).tolist())
    assert blocks == set(range((FREY_N_FRAMES - 1) // FREY_BLOCK + 1)), "every 100-frame block must be labelled"


def test_frames_follow_documented_selection_rule():
    # README: every 5th frame, 0..1960, all labelled.
    np.testing.assert_array_equal(load_frey_labels()["frame"], selected_frames(5))


def test_class_counts_reasonable():
    labels = load_frey_labels(drop_ambiguous=True)
    smile_counts = {v: int((labels["smile"] == v).sum()) for v in (0, 1)}
    pose_counts = {v: int((labels["pose"] == v).sum()) for v in (-1, 0, 1)}
    assert min(smile_counts.values()) >= 50, smile_counts
    assert min(pose_counts.values()) >= 25, pose_counts


def test_ambiguous_few_and_dropped():
    full = load_frey_labels()
    kept = load_frey_labels(drop_ambiguous=True)
    n_amb = int(full["ambiguous"].sum())
    assert n_amb <= 0.05 * len(full["frame"])
    assert len(kept["frame"]) == len(full["frame"]) - n_amb
    assert not kept["ambiguous"].any()


def test_loader_round_trip(tmp_path):
    rows = [(10, 1, -1, 0, "a, quoted note"), (3, 0, 1, 1, ""), (1964, 0, 0, 0, "x")]
    path = tmp_path / "labels.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)
    out = load_frey_labels(path)
    assert set(out) == {"frame", "smile", "pose", "ambiguous", "note"}
    np.testing.assert_array_equal(out["frame"], [3, 10, 1964])  # sorted by frame
    np.testing.assert_array_equal(out["smile"], [0, 1, 0])
    np.testing.assert_array_equal(out["pose"], [1, -1, 0])
    np.testing.assert_array_equal(out["ambiguous"], [True, False, False])
    assert list(out["note"]) == ["", "a, quoted note", "x"]
    assert out["frame"].dtype == np.int64 and out["pose"].dtype == np.int64
    np.testing.assert_array_equal(load_frey_labels(path, drop_ambiguous=True)["frame"], [10, 1964])


@pytest.mark.parametrize(
    "body, message",
    [
        ("frame,smile,pose\n1,0,0\n", "expected header"),
        ("frame,smile,pose,ambiguous,note\n1,0,2,0,\n", "pose must be one of"),
        ("frame,smile,pose,ambiguous,note\n1965,0,0,0,\n", "frame must be in"),
        ("frame,smile,pose,ambiguous,note\n1,yes,0,0,\n", "must be integers"),
        ("frame,smile,pose,ambiguous,note\n1,0,0,0,\n1,1,0,0,\n", "duplicate frames"),
        ("frame,smile,pose,ambiguous,note\n1,0,0\n", "expected 5 fields"),
        ("frame,smile,pose,ambiguous,note\n", "no label rows"),
    ],
)
def test_loader_rejects_bad_csv(tmp_path, body, message):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(ValueError, match=message):
        load_frey_labels(path)


def test_render_sheet_layout():
    frames = np.zeros((13, 28, 20), dtype=np.uint8)
    frames[:, :, :10] = 255
    img = render_sheet(frames, list(range(13)), cols=5, scale=3, title="t")
    # 5 columns of 60-px tiles with 8-px gaps; 3 rows of 84-px tiles + 22-px labels + gaps + title.
    assert img.size == (5 * (60 + 8) + 8, 28 + 3 * (84 + 22 + 8) + 8)
    px = np.asarray(img.convert("L"))
    assert px[28 + 8 + 40, 8 + 5] == 255 and px[28 + 8 + 40, 8 + 50] == 0  # first tile, left half white


def test_test_split_has_every_class():
    # The app judges directions on checkpoint test sets; Frey's test split is every 10th frame.
    from trainer.data import FREY_TEST_EVERY

    labels = load_frey_labels(drop_ambiguous=True)
    in_test = labels["frame"] % FREY_TEST_EVERY == 0
    assert in_test.sum() >= 150
    for name, values, least in (("smile", (0, 1), 40), ("pose", (-1, 0, 1), 10)):
        counts = [int((labels[name][in_test] == v).sum()) for v in values]
        assert min(counts) >= least, (name, counts)


@pytest.mark.slow
def test_sheets_from_real_data(shared_data_dir, tmp_path):
    from scipy.io import loadmat

    from trainer.labels.make_contact_sheets import load_frey_frames, main

    frames = load_frey_frames(shared_data_dir)
    ff = loadmat(shared_data_dir / "frey" / "frey_rawface.mat")["ff"]
    np.testing.assert_array_equal(frames, ff.T.reshape(-1, 28, 20))  # frame i is column i of ff
    main(["--data-dir", str(shared_data_dir), "--out", str(tmp_path), "--no-frame-sheets",
          "--labels", str(LABELS_PATH), "--zoom", "0", "125"])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "zoom_00.png" in names and "check_pose_-1_00.png" in names and "check_smile_1_00.png" in names
    assert not any(n.startswith("sheet_") for n in names)
