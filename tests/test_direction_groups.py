"""The user's groups before they are fitted (explorer.direction_groups): draft rules, saving,
the per-session limits, merging a file, and the pickers' pure parts."""

from __future__ import annotations

import numpy as np
import pytest

from explorer import direction_groups as dg
from explorer import directions as ed
from explorer.directions_file import MAX_GROUPS, MAX_VECTORS


def test_a_point_is_in_one_draft_group_only():
    g = dg.DirectionGroups()
    g.add("A", [3, 1, 2])
    g.add("B", np.array([2, 5]))
    assert g.draft == {"A": [1, 3], "B": [2, 5]}
    g.add("A", [5, 1])
    assert g.draft == {"A": [1, 3, 5], "B": [2]}
    with pytest.raises(dg.GroupError, match="groups are A and B"):
        g.add("C", [1])
    g.clear_draft()
    assert g.draft == {"A": [], "B": []}


def test_state_is_changed_in_place():
    """The app hands in its session-state dicts; the class must change those, not copies."""
    draft, saved, vectors = dg.empty_draft(), {}, {}
    g = dg.DirectionGroups(draft, saved, vectors)
    g.add("A", [1])
    g.add("B", [2])
    assert g.save(" thin ") == "Saved 'thin': 1 vs 1 points."
    assert saved == {"thin": {"pos": [1], "neg": [2]}} and draft == {"A": [], "B": []}
    g.merge({}, {"v": [1.0, 0.0]}, "f.json")
    assert vectors == {"v": [1.0, 0.0]}
    g.delete("thin")
    g.delete("never there")
    assert saved == {}


@pytest.mark.parametrize("name, a, b, match", [
    ("", [1], [2], "Give the direction a name"),
    ("bad/name", [1], [2], "Give the direction a name"),
    ("x" * 61, [1], [2], "Give the direction a name"),
    ("ok", [], [2], "Both groups"),
    ("ok", [1], [], "Both groups"),
])
def test_save_refusals_change_nothing(name, a, b, match):
    g = dg.DirectionGroups(draft={"A": a, "B": b})
    with pytest.raises(dg.GroupError, match=match):
        g.save(name)
    assert g.saved == {} and g.draft == {"A": a, "B": b}


def test_session_limits():
    g = dg.DirectionGroups(saved={f"g{i}": {"pos": [0], "neg": [1]} for i in range(MAX_GROUPS)})
    g.add("A", [1])
    g.add("B", [2])
    with pytest.raises(dg.GroupError, match="delete one first"):
        g.save("one more")
    assert g.save("g0").startswith("Saved 'g0'")  # replacing one is fine
    # a file that would take the session over a limit is refused whole
    with pytest.raises(dg.GroupError, match=f"{MAX_GROUPS + 1} groups"):
        g.merge({"new": {"pos": [1], "neg": [2]}}, {}, "f.json")
    with pytest.raises(dg.GroupError, match=f"{MAX_VECTORS + 1} vectors"):
        g.merge({}, {f"v{i}": [1.0] for i in range(MAX_VECTORS + 1)}, "f.json")
    assert len(g.saved) == MAX_GROUPS and g.vectors == {}
    msg = g.merge({"g1": {"pos": [7], "neg": [8]}}, {"v": [0.0, 1.0]}, "f.json")
    assert msg == "Loaded 1 groups and 1 vectors from f.json." and g.saved["g1"] == {"pos": [7], "neg": [8]}


def test_histogram_groups_only_for_a_saved_user_direction():
    g = dg.DirectionGroups(saved={"mine": {"pos": [1, 2], "neg": [3]}})
    v = np.array([1.0, 0.0])
    user = ed.Direction(key="user:mine.classifier", name="mine", method="classifier", label="mine", vector=v, spread=1)
    builtin = ed.Direction(key="builtin:mine.regression", name="mine", method="regression", label="m", vector=v,
                           spread=1)
    gone = ed.Direction(key="user:gone.classifier", name="gone", method="classifier", label="g", vector=v, spread=1)
    assert g.histogram_groups(user) == {"group A": [1, 2], "group B": [3]}
    assert g.histogram_groups(builtin) is None and g.histogram_groups(gone) is None


def test_gallery_pages_and_rows():
    assert dg.gallery_pages(10000) == 415 and dg.gallery_pages(24) == 0 and dg.gallery_pages(5) == 0
    rows = dg.gallery_rows(10000, 3)
    assert rows.shape == (dg.GALLERY,) and len(set(rows.tolist())) == dg.GALLERY and rows.max() < 10000
    assert np.array_equal(rows, dg.gallery_rows(10000, 3)) and not np.array_equal(rows, dg.gallery_rows(10000, 4))
    assert sorted(dg.gallery_rows(5, 0).tolist()) == [0, 1, 2, 3, 4]


def test_rows_with_labels():
    labels = np.array([3, 1, 3, 0, 7])
    assert dg.rows_with_labels(labels, [3, 7]).tolist() == [0, 2, 4]
    assert dg.rows_with_labels(labels, []).tolist() == []
