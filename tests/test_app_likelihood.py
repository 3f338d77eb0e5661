"""The Likelihood tab under AppTest: every tiny and every shipped checkpoint, a test image, an
upload (binarised like the test set for a binarised model), a map pick, the long run, a missing
dataset folder and a bad stored table."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer import likelihood_lab as lab
from explorer import models
from tests.explorer_fixtures import make_checkpoint
from trainer.checkpoint import load_checkpoint, save_checkpoint

APP = str(Path(__file__).resolve().parent.parent / "app_page.py")
SHIPPED = [e for e in models.discover(models.REPO_ROOT / "checkpoints") if e.ok]


@pytest.fixture(autouse=True)
def fresh_caches():
    """Cached test images and results are per process: start each test from none."""
    st.cache_data.clear()
    st.cache_resource.clear()
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)  # the app sets one thread for its process


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lik-ckpts")
    make_checkpoint(d / "mnist-z2.safetensors", "mnist", 2)
    make_checkpoint(d / "mnist-z5.safetensors", "mnist", 5)
    make_checkpoint(d / "frey-z3.safetensors", "frey", 3, n_test=20)
    # a binarised MNIST model, as the shipped ones are
    ck = load_checkpoint(make_checkpoint(d / "binary-z2.safetensors", "mnist", 2))
    save_checkpoint(ck.path, ck.model, {**ck.meta, "binarized": True}, dict(ck.arrays))
    return d


@pytest.fixture
def table(tmp_path, monkeypatch) -> Path:
    """A valid stored table with a row for a tiny model, in place of the shipped one."""
    p = tmp_path / "likelihood_table.json"
    row = {"model": "mnist-z2", "dataset": "mnist", "likelihood": "bernoulli", "n": 60, "subset": "all",
           "elbo": -150.0, "is_k1000": -140.0, "naive_L1e5": -160.0, "exact": -139.5, "fingerprint": "x"}
    p.write_text(json.dumps({"format": lab.TABLE_FORMAT, "version": 1, "created": "today", "subset": "all 60",
                             "rows": [row]}))
    monkeypatch.setattr(lab, "TABLE_FILE", p)
    return p


def _open(folder: Path, monkeypatch, name: str, data_dir: Path | None = None) -> AppTest:
    monkeypatch.setenv(models.CHECKPOINT_DIR_ENV, str(folder))
    if data_dir is not None:
        monkeypatch.setenv("VAE_DATA_DIR", str(data_dir))
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["model"] = name
    at.session_state["view"] = "Likelihood"
    return at.run()


def _switch(at: AppTest, view: str) -> AppTest:
    """Open another tab (the tab is bound to the URL, so set both)."""
    at.session_state["view"] = view
    at.query_params["view"] = view
    return at.run()


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for group in (at.markdown, at.caption, at.info, at.error) for e in group)


def _check_estimates(at: AppTest, z_dim: int) -> None:
    assert not at.exception, [e.value for e in at.exception]
    labels = [m.label for m in at.metric]
    assert labels[:5] == ["exact", "IS, k = 10⁴", "naive, L = 10⁵", "ELBO", "ELBO gap"]
    assert (at.metric[0].value == "n/a") == (z_dim != 2)
    text = _texts(at)
    assert "naive Monte Carlo (eq. 1) is" in text and "ELBO of eq. (2) lies" in text
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert any(t.startswith("estimates of log p(x)") for t in titles) and "zoom: near log p(x)" in titles
    assert ("99% of the posterior mass" in text) == (z_dim == 2)


@pytest.mark.parametrize("name, z_dim", [("mnist-z2", 2), ("mnist-z5", 5), ("frey-z3", 3), ("binary-z2", 2)])
def test_tab_on_tiny_models(tiny_dir, monkeypatch, table, shared_data_dir, name, z_dim):
    at = _open(tiny_dir, monkeypatch, name, shared_data_dir)
    _check_estimates(at, z_dim)
    assert ("Gaussian decoder" in _texts(at)) == name.startswith("frey")
    assert len(at.dataframe) == 1 and at.dataframe[0].value.shape[0] == 1
    # a binarised model scores the binary image and shows it beside the grey one
    captions = [im.proto.imgs[0].caption for im in at.get("image")]
    assert ("grey | the binary image p(x|z) scores" in captions) == (name == "binary-z2")


def test_another_test_image_and_a_map_pick(tiny_dir, monkeypatch, table, shared_data_dir):
    at = _open(tiny_dir, monkeypatch, "mnist-z2", shared_data_dir)
    first = at.metric[1].value
    at.number_input(key="lik.mnist-z2.row").set_value(5).run()
    assert not at.exception and at.metric[1].value != first
    assert "Test image 5, digit 5" in _texts(at)
    at.session_state["lik.mnist-z2.map"] = {
        "selection": {"points": [{"customdata": 7}], "point_indices": [7], "box": [], "lasso": []}}
    at.run()
    assert not at.exception and at.number_input(key="lik.mnist-z2.row").value == 7


def _png() -> bytes:
    a = np.full((120, 90), 255, np.uint8)
    a[20:100, 30:42] = 0
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("name", ["binary-z2", "mnist-z5"])
def test_upload(tiny_dir, monkeypatch, table, name):
    at = _open(tiny_dir, monkeypatch, name, tiny_dir)  # no dataset in that folder: uploads still work
    _switch(at, "Encode an upload").file_uploader(key="upload_file").upload("digit.png", _png(), "image/png").run()
    _switch(at, "Likelihood")
    at.radio(key=f"lik.{name}.src").set_value("Upload").run()
    _check_estimates(at, 2 if name.endswith("z2") else 5)
    assert ("one fixed Bernoulli draw" in _texts(at)) == (name == "binary-z2")


def test_long_run_button(tiny_dir, monkeypatch, table, shared_data_dir):
    monkeypatch.setattr(lab, "LONG", lab.Budget(300_000, 30_000))  # the machinery, at a test's cost
    at = _open(tiny_dir, monkeypatch, "mnist-z5", shared_data_dir)
    at.button(key="lik.mnist-z5.long").click().run()
    assert not at.exception
    assert [m.label for m in at.metric][1:3] == [f"IS, k = {lab.LONG.k:,}", f"naive, L = {lab.LONG.L:,}"]
    assert not [b for b in at.button if b.key == "lik.mnist-z5.long"]  # done: no button any more


def test_missing_dataset_still_shows_the_table(tiny_dir, monkeypatch, table, tmp_path):
    at = _open(tiny_dir, monkeypatch, "mnist-z2", tmp_path / "no-data")
    assert not at.exception
    assert "test-set table below is stored" in _texts(at)
    assert len(at.metric) == 0 and len(at.dataframe) == 1


@pytest.mark.parametrize("content", [b"{not json", b'{"format": "other"}', None])
def test_bad_or_missing_table(tiny_dir, monkeypatch, tmp_path, shared_data_dir, content):
    p = tmp_path / "likelihood_table.json"
    if content is not None:
        p.write_bytes(content)
    monkeypatch.setattr(lab, "TABLE_FILE", p)
    at = _open(tiny_dir, monkeypatch, "mnist-z2", shared_data_dir)
    assert not at.exception and len(at.dataframe) == 0
    assert any("likelihood_table.json" in e.value and "bench.likelihood_lab" in e.value for e in at.error)
    assert len(at.metric) == 5  # the rest of the tab works


@pytest.mark.skipif(not SHIPPED, reason="no shipped checkpoints in checkpoints/")
@pytest.mark.parametrize("entry", SHIPPED, ids=[e.name for e in SHIPPED])
def test_tab_on_shipped_checkpoints(monkeypatch, shared_data_dir, entry):
    at = _open(models.REPO_ROOT / "checkpoints", monkeypatch, entry.name, shared_data_dir)
    if entry.kind != "vae":  # an autoencoder has no p(x): one sentence says so; the VAEs' table still shows
        assert not at.exception and any("would need a prior p(z)" in i.value for i in at.info)
        assert len(at.dataframe) == 1
        return
    _check_estimates(at, entry.z_dim)
    table = at.dataframe[0].value
    assert set(table["table computed for"]) == {"these weights"}, table
    assert any(str(m).startswith("▶ ") for m in table["model"])
