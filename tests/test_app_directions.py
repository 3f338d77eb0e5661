"""The Directions view under AppTest: edits along stored directions, holds, the strip and its
downloads, user directions from a (faked) lasso selection, and the JSON file round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer import directions as ed
from tests.explorer_fixtures import make_checkpoint
from trainer.directions import store_directions, unit

ENV = "DIRECTIONS_TEST_CHECKPOINT"


def _page():
    """The Directions view alone, on the checkpoint named by $DIRECTIONS_TEST_CHECKPOINT."""
    import os

    from explorer import models
    from views import directions
    from views.context import ViewContext, load_model

    path = os.environ["DIRECTIONS_TEST_CHECKPOINT"]
    entry = next(e for e in models.discover(os.path.dirname(path)) if str(e.path) == path)
    ck, err = load_model(str(entry.path), entry.mtime)
    directions.render(ViewContext(entry=entry, ck=ck, problems=models.check_arrays(ck)))


def _with_directions(path: Path, dataset: str = "mnist", z_dim: int = 3) -> Path:
    make_checkpoint(path, dataset=dataset, z_dim=z_dim, n_test=80)
    g = np.random.default_rng(1)
    names = ("slant", "thickness") if dataset == "mnist" else ("smile", "pose")
    arrays, meta = {}, {}
    for n in names:
        arrays[f"{n}.mean_difference"] = unit(g.standard_normal(z_dim)).astype(np.float32)
        meta[n] = {"mean_difference": {"label": n.title(), "kind": "continuous", "unit": "", "spread": 0.8,
                                       "source": "test", "quality": {"r2": 0.61, "spearman": 0.8, "n": 80}}}
    store_directions(path, arrays, meta)
    return path


@pytest.fixture()
def app(tmp_path, monkeypatch):
    def make(path: Path) -> AppTest:
        monkeypatch.setenv(ENV, str(path))
        return AppTest.from_function(_page, default_timeout=60).run()

    return make


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _urls(at: AppTest) -> list[str]:
    return [im.proto.imgs[0].url for im in at.get("image")]


def test_edit_along_stored_direction(tmp_path, app):
    path = _with_directions(tmp_path / "m.safetensors")
    at = app(path)
    _ok(at)
    name = "m"
    # base, result, strip; histogram and the lasso map; strip PNG + GIF + (disabled) JSON export
    assert len(at.get("image")) == 3
    assert len(at.get("plotly_chart")) == 2
    assert len(at.get("download_button")) == 3
    assert any("held-out R² 0.61" in c.value for c in at.caption)
    before = _urls(at)
    at.slider(key=f"dir.{name}.amount.builtin:slant.mean_difference").set_value(-2.0).run()
    _ok(at)
    after = _urls(at)
    assert after[0] == before[0] and after[1] != before[1]  # base unchanged, result moved
    # hold the other direction: still renders, and the histogram marks base and result
    at.button_group(key=f"dir.{name}.hold").set_value(["builtin:thickness.mean_difference"]).run()
    _ok(at)
    hist = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [t.get("name", "") for t in hist["data"]]
    assert names[0] == "test set" and any(n.startswith("base") for n in names) and any(n.startswith("result") for n in names)
    # two directions at once: one amount slider each
    at.multiselect(key=f"dir.{name}.chosen").set_value(
        ["builtin:slant.mean_difference", "builtin:thickness.mean_difference"]).run()
    _ok(at)
    assert len([s for s in at.slider if ".amount." in s.key]) == 2


def test_user_direction_from_lasso_and_json(tmp_path, app):
    path = _with_directions(tmp_path / "m.safetensors")
    at = app(path)
    k = "dir.m.b"
    sel = lambda rows: {"selection": {"points": [{"customdata": r} for r in rows],  # noqa: E731
                                      "point_indices": rows, "box": [], "lasso": []}}
    at.session_state[f"{k}.map"] = sel(list(range(0, 20)))
    at.run()
    at.button(key=f"{k}.mapA").click().run()
    at.session_state[f"{k}.map"] = sel(list(range(30, 50)))
    at.run()
    at.button(key=f"{k}.mapB").click().run()
    _ok(at)
    assert any("group A 20 points, group B 20 points" in m.value for m in at.markdown)
    at.text_input(key=f"{k}.name").set_value("my dir").run()
    at.button(key=f"{k}.save").click().run()
    _ok(at)
    assert any("Saved 'my dir'" in s.value for s in at.success)
    options = at.multiselect(key="dir.m.chosen").options
    assert any("my dir" in o for o in options) and len(options) == 4  # 2 stored + 2 methods of mine
    # the export holds the groups; importing it into a fresh session brings them back
    export = at.session_state["dir.groups"]["mnist"]
    assert export == {"my dir": {"pos": list(range(20)), "neg": list(range(30, 50))}}
    data = ed.export_json("m", "mnist", 80, 3, export)
    at2 = app(path)
    at2.session_state["dir.groups"] = {}
    _ok(at2)
    # a bad file is refused with a one-line message, a good one is loaded
    _upload(at2, "dir.m.b.import", "bad.json", b"{oops")
    assert any(e.value.startswith("bad.json: not valid JSON") for e in at2.error)
    _upload(at2, "dir.m.b.import", "good.json", data)
    _ok(at2)
    assert any("Loaded 1 groups" in s.value for s in at2.success)
    assert at2.session_state["dir.groups"]["mnist"] == export


def _upload(at: AppTest, key: str, name: str, data: bytes) -> None:
    at.file_uploader(key=key).upload(name, data, "application/json").run()


def test_no_directions_offers_to_compute(tmp_path, app):
    path = make_checkpoint(tmp_path / "plain.safetensors", dataset="frey", z_dim=2, n_test=20)
    at = app(path)
    _ok(at)
    assert any("no built-in directions" in i.value for i in at.info)
    at.button(key="dir.plain.compute")  # offered


@pytest.mark.slow
def test_compute_builtin_now(tmp_path, app, shared_data_dir, monkeypatch):
    monkeypatch.setenv("VAE_DATA_DIR", str(shared_data_dir))
    path = make_checkpoint(tmp_path / "plain.safetensors", dataset="frey", z_dim=2, n_test=20)
    at = app(path)
    at.button(key="dir.plain.compute").click().run()
    _ok(at)
    options = at.multiselect(key="dir.plain.chosen").options
    assert len(options) == 5 and any("Smile" in o for o in options) and any("Pose" in o for o in options)
    assert len(at.get("image")) == 3


def test_tab_in_the_app(tmp_path, monkeypatch):
    """The tab is wired into streamlit_app.py and renders for MNIST and Frey Face models."""
    from explorer import models

    _with_directions(tmp_path / "mnist-z3.safetensors", "mnist", 3)
    _with_directions(tmp_path / "frey-z2.safetensors", "frey", 2)
    monkeypatch.setenv(models.CHECKPOINT_DIR_ENV, str(tmp_path))
    app_file = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
    for model in ("mnist-z3", "frey-z2"):
        at = AppTest.from_file(app_file, default_timeout=60)
        at.session_state["model"] = model
        at.session_state["view"] = "Directions"
        at.run()
        _ok(at)
        assert len(at.get("image")) == 3 and len(at.get("download_button")) == 3


def test_deleting_a_chosen_user_direction(tmp_path, app):
    path = _with_directions(tmp_path / "m.safetensors")
    at = app(path)
    at.session_state["dir.groups"] = {"mnist": {"mine": {"pos": [1, 2, 3], "neg": [4, 5, 6]}}}
    at.run()
    at.multiselect(key="dir.m.chosen").set_value(["user:mine.classifier"]).run()
    _ok(at)
    assert any("3 points (A) vs 3 (B)" in c.value for c in at.caption)
    at.button(key="dir.m.b.del.mine").click().run()
    _ok(at)
    assert at.multiselect(key="dir.m.chosen").value == []
    assert any("Pick at least one direction" in i.value for i in at.info)
