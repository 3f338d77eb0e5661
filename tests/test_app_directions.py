"""The Directions view under AppTest: edits along stored directions (the base, result and strip
images compared with the model's own decoding, the quality scores shown), holds, downloads,
user directions from a (faked) lasso selection, the JSON file round trip through the download
and upload widgets, hostile files, and that fitted groups are not refitted on a rerun."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer import directions as ed
from explorer import directions_file as df
from explorer import images, models
from tests.explorer_fixtures import make_checkpoint
from trainer.checkpoint import load_checkpoint
from trainer.directions import store_directions, unit

ENV = "DIRECTIONS_TEST_CHECKPOINT"
SLANT = "builtin:slant.mean_difference"


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


@pytest.fixture()
def media(monkeypatch):
    """The bytes behind a media URL (images, downloads) of any app run in this test."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    files: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, data, mimetype, kind, filename=None):
        file_id = original(self, data, mimetype, kind, filename)
        files[file_id] = data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return lambda url: files[url.rsplit("/", 1)[-1].split(".")[0]]


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _urls(at: AppTest) -> list[str]:
    return [im.proto.imgs[0].url for im in at.get("image")]


def _pixels(media, url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(media(url))).convert("L"))


def _expected(ck, z: np.ndarray, target: int, max_factor: int = 8) -> np.ndarray:
    """What the view should show for latent point(s) z: the model's decoding, upscaled."""
    img = models.decode(ck, np.asarray(z, np.float32))
    if img.ndim == 3:
        img = images.tile(img, ncols=len(img))
    return images.display(img, images.display_size(img.shape, target=target, max_factor=max_factor)[0])


def _assert_image(media, url: str, want: np.ndarray) -> None:
    got = _pixels(media, url)
    assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 1  # float rounding at most


def test_edit_along_stored_direction(tmp_path, app, media):
    path = _with_directions(tmp_path / "m.safetensors")
    ck = load_checkpoint(path)
    mu = ck.arrays["test_mu"].numpy()
    slant, thick = ed.builtin_directions(ck.arrays, ck.meta, 3, mu)
    at = app(path)
    _ok(at)
    name = "m"
    # base (test row 0), result (1.5 test-set SDs along slant), strip of 9 from -1.5 to +1.5
    assert len(at.get("image")) == 3 and len(at.get("plotly_chart")) == 2
    assert len(at.get("download_button")) == 3  # strip PNG + GIF + (disabled) JSON export
    base_url, result_url, strip_url = _urls(at)
    _assert_image(media, base_url, _expected(ck, mu[0], 220))
    _assert_image(media, result_url, _expected(ck, mu[0] + 1.5 * 0.8 * slant.vector, 220))
    _assert_image(media, strip_url, _expected(ck, ed.sweep(mu[0], [(slant, 1.5)], steps=9)[1], 900, 6))
    # the quality scores: under the slider, and in the table of every direction
    assert "Quality: held-out R² 0.61, Spearman 0.80 (n = 80). Source: test." in [c.value for c in at.caption]
    table = at.dataframe[0].value
    assert table.to_dict("records") == [
        {"direction": n, "method": "mean difference", "held-out": "held-out R² 0.61, Spearman 0.80 (n = 80)",
         "source": "test"} for n in ("Slant", "Thickness")]
    at.slider(key=f"dir.{name}.amount.{SLANT}").set_value(-2.0).run()
    _ok(at)
    assert _urls(at)[0] == base_url
    _assert_image(media, _urls(at)[1], _expected(ck, mu[0] - 2.0 * 0.8 * slant.vector, 220))
    # hold the other direction: the result moves along slant only, and the histogram marks
    # base and result where they fall in test-set SDs along slant
    at.button_group(key=f"dir.{name}.hold").set_value(["builtin:thickness.mean_difference"]).run()
    _ok(at)
    result = ed.apply_directions(mu[0], [(slant, -2.0)], hold=[thick])
    _assert_image(media, _urls(at)[1], _expected(ck, result, 220))
    hist = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [t.get("name", "") for t in hist["data"]]
    centre = float((mu.astype(np.float64) @ slant.vector).mean())
    where = [(float(z @ slant.vector) - centre) / 0.8 for z in (mu[0].astype(np.float64), result)]
    assert names == ["test set", f"base ({where[0]:+.2f})", f"result ({where[1]:+.2f})"]
    assert abs(where[1] - where[0] + 2.0) < 1e-5
    # two directions at once: one amount slider each
    at.multiselect(key=f"dir.{name}.chosen").set_value([SLANT, "builtin:thickness.mean_difference"]).run()
    _ok(at)
    assert len([s for s in at.slider if ".amount." in s.key]) == 2


def _select(at: AppTest, key: str, rows: list[int]) -> None:
    at.session_state[key] = {"selection": {"points": [{"customdata": r} for r in rows], "point_indices": rows,
                                           "box": [], "lasso": []}}
    at.run()


def _upload(at: AppTest, key: str, name: str, data: bytes) -> None:
    at.file_uploader(key=key).upload(name, data, "application/json").run()


def test_user_direction_from_lasso_and_json(tmp_path, app, media):
    path = _with_directions(tmp_path / "m.safetensors")
    at = app(path)
    k = "dir.m.b"
    _select(at, f"{k}.map", list(range(0, 20)))
    at.button(key=f"{k}.mapA").click().run()
    _select(at, f"{k}.map", list(range(30, 50)))
    at.button(key=f"{k}.mapB").click().run()
    _ok(at)
    assert any("group A 20 points, group B 20 points" in m.value for m in at.markdown)
    at.text_input(key=f"{k}.name").set_value("my dir").run()
    at.button(key=f"{k}.save").click().run()
    _ok(at)
    assert any("Saved 'my dir'" in s.value for s in at.success)
    options = at.multiselect(key="dir.m.chosen").options
    assert any("my dir" in o for o in options) and len(options) == 4  # 2 stored + 2 methods of mine
    saved = {"my dir": {"pos": list(range(20)), "neg": list(range(30, 50))}}
    assert at.session_state["dir.groups"]["mnist"] == saved
    mu = load_checkpoint(path).arrays["test_mu"].numpy()
    quality = ed.quality_text(ed.user_directions(mu, "my dir", range(20), range(30, 50))[0])
    line = f"- **my dir**: 20 vs 20 points. {quality}"
    assert line in [m.value for m in at.markdown]
    # the download is the directions file of these groups
    export = next(b for b in at.get("download_button") if b.proto.label.startswith("Download your directions"))
    data = media(export.proto.url)
    assert df.import_json(data, "mnist", 80, 3) == (saved, {})
    # a fresh session: a bad file is refused with one line, the downloaded one brings the group back
    at2 = app(path)
    _ok(at2)
    _upload(at2, f"{k}.import", "bad.json", b"{oops")
    assert [e.value for e in at2.error] == ["bad.json: not valid JSON (Expecting property name enclosed in double "
                                            "quotes at line 1, column 2)"]
    _upload(at2, f"{k}.import", "good.json", data)
    _ok(at2)
    assert [s.value for s in at2.success] == ["Loaded 1 groups and 0 vectors from good.json."]
    assert at2.session_state["dir.groups"]["mnist"] == saved and line in [m.value for m in at2.markdown]


HOSTILE = {
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "5000-digit integer": f'{{"format": "{df.FILE_FORMAT}", "version": 1, "dataset": "mnist", '
                          f'"vectors": {{"v": [1, 1, {"9" * 5000}]}}}}'.encode(),
    "10**400": df.export_json("m", "mnist", 80, 3, {}, {}).replace(b'"vectors": {}',
                                                                   b'"vectors": {"v": [1, 1, 1' + b"0" * 400 + b"]}"),
    "10 MB name": json.dumps({"format": df.FILE_FORMAT, "version": 1, "dataset": "mnist",
                              "groups": {"x" * 10_000_000: {"pos": [1], "neg": [2]}}}).encode(),
    "20000 one-point groups": df.export_json("m", "mnist", 80, 3, {f"g{i}": {"pos": [i % 40], "neg": [40 + i % 40]}
                                                                   for i in range(20_000)}),
}


@pytest.mark.parametrize("family", list(HOSTILE))
def test_hostile_files_are_refused_in_one_line(tmp_path, app, family):
    path = _with_directions(tmp_path / "m.safetensors")
    at = app(path)
    _upload(at, "dir.m.b.import", "evil.json", HOSTILE[family])
    _ok(at)
    (err,) = at.error
    assert err.value.startswith("evil.json") and "\n" not in err.value and len(err.value) <= 300
    assert len(at.get("image")) == 3 and at.session_state["dir.groups"]["mnist"] == {}


@pytest.mark.parametrize("scale", [1e155, 1e200])
def test_huge_vectors_are_usable(tmp_path, app, media, scale):
    """[1e155] * J and [1e200] * J used to be accepted and then fail on every rerun."""
    path = _with_directions(tmp_path / "m.safetensors")
    at = app(path)
    data = df.export_json("m", "mnist", 80, 3, {}, {"big": [scale, scale, -scale]})
    _upload(at, "dir.m.b.import", "big.json", data)
    _ok(at)
    at.multiselect(key="dir.m.chosen").set_value(["vector:big"]).run()
    _ok(at)
    ck = load_checkpoint(path)
    mu = ck.arrays["test_mu"].numpy()
    d = ed.vector_direction(mu, "big", np.array([1.0, 1.0, -1.0]) / np.sqrt(3))
    _assert_image(media, _urls(at)[1], _expected(ck, ed.apply_directions(mu[0], [(d, 1.5)]), 220))


def test_groups_are_fitted_once(tmp_path, app, monkeypatch):
    """A rerun does not refit saved groups: fits are cached on the group's rows."""
    calls = []
    fit = ed.user_directions
    monkeypatch.setattr(ed, "user_directions", lambda *a, **k: calls.append(a[1]) or fit(*a, **k))
    path = _with_directions(tmp_path / "m.safetensors")
    at = app(path)
    at.session_state["dir.groups"] = {"mnist": {"once": {"pos": [1, 2, 3], "neg": [4, 5, 6]}}}
    for amount in (0.5, 1.0, -1.0):
        at.slider(key=f"dir.m.amount.{SLANT}").set_value(amount).run()
        _ok(at)
    assert calls == ["once"]
    # another group of the same name is another fit
    at.session_state["dir.groups"] = {"mnist": {"once": {"pos": [1, 2], "neg": [4, 5, 6]}}}
    at.run()
    assert calls == ["once", "once"]


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
    """The tab is wired into app_page.py and renders for MNIST and Frey Face models."""
    _with_directions(tmp_path / "mnist-z3.safetensors", "mnist", 3)
    _with_directions(tmp_path / "frey-z2.safetensors", "frey", 2)
    monkeypatch.setenv(models.CHECKPOINT_DIR_ENV, str(tmp_path))
    app_file = str(Path(__file__).resolve().parent.parent / "app_page.py")
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
