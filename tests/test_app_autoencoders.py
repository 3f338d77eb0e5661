"""The app with autoencoders: every tab on tiny AE and DAE checkpoints (what needs a prior says
so in one sentence; sliders and grids span the codes' range), and the Compare tab (maps, draws,
the stored table and the claims; measuring on request; shipped checkpoints)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explorer import compare_store, models
from tests.apptest import run_app
from tests.explorer_fixtures import make_checkpoint
from tests.test_app import SHIPPED_DIR, _digit_png, _every_view, _open, _slider, _texts
from trainer.checkpoint import load_checkpoint


def _caption(at) -> str:
    """The caption of the page's one image."""
    return at.get("image")[0].proto.imgs[0].caption


TRIO = (("mnist-z2", "vae"), ("mnist-ae-z2", "ae"), ("mnist-dae-z2", "dae"))


@pytest.fixture(scope="module")
def ae_dir(tmp_path_factory) -> Path:
    """A 2-D VAE, AE and DAE (their figures stored, as the bench writes them) and a 5-D DAE."""
    d = tmp_path_factory.mktemp("ae")
    for name, kind in TRIO:
        make_checkpoint(d / f"{name}.safetensors", "mnist", 2, kind=kind, n_test=100)
    make_checkpoint(d / "mnist-dae-z5.safetensors", "mnist", 5, kind="dae", n_test=100)
    x = np.random.default_rng(0).random((100, 28, 28)).astype(np.float32)
    clf = compare_store.classifier_for("mnist", (28, 28))
    entries = {n: compare_store.measure(load_checkpoint(d / f"{n}.safetensors"), x, clf) for n, _ in TRIO}
    compare_store.write(d / compare_store.FILE_NAME, compare_store.Stored(models=entries, ideal={}, classifier={}))
    return d


@pytest.mark.parametrize("name, z_dim", [("mnist-ae-z2", 2), ("mnist-dae-z2", 2), ("mnist-dae-z5", 5)])
def test_every_view_on_autoencoders(ae_dir, monkeypatch, name, z_dim):
    _every_view(ae_dir, monkeypatch, name, z_dim)


def test_views_needing_a_prior_say_why_in_one_sentence(ae_dir, monkeypatch):
    at = run_app(ae_dir, monkeypatch, "mnist-ae-z2")
    for view in ("Likelihood", "Sliders", "Model card"):
        _open(at, view)
        said = [t for t in _texts(at) if "would need a prior p(z)" in t]
        assert said and all(t.count(". ") <= 1 for t in said), (view, said)
        assert not any("Under the prior" in t for t in _texts(at))
    assert {m.label for m in at.metric} >= {"Test squared error per image"}  # the Model card's
    assert not [b for b in at.button if b.label == "Random prior sample"]
    _open(at, "Sliders")
    mu = load_checkpoint(ae_dir / "mnist-ae-z2.safetensors").arrays["test_mu"].numpy()
    next(b for b in at.button if b.label == "Random test code").click().run()
    z = at.session_state["z"]["mnist-ae-z2"]
    assert np.min(np.abs(mu - np.asarray(z)).max(1)) <= 0.1  # a test image's code, snapped to the slider step


def test_autoencoder_sliders_span_the_codes_and_start_at_their_mean(ae_dir, monkeypatch):
    at = _open(run_app(ae_dir, monkeypatch, "mnist-ae-z2"), "Sliders")
    ck = load_checkpoint(ae_dir / "mnist-ae-z2.safetensors")
    mu = ck.arrays["test_mu"].numpy()
    box = models.latent_box(ck)
    for j in range(2):
        s = _slider(at, "mnist-ae-z2", j)
        assert s.min == pytest.approx(box.lo[j]) and s.max == pytest.approx(box.hi[j])
        assert s.min < mu[:, j].min() and s.max > mu[:, j].max()  # the codes lie far outside +-4 here
        assert s.value == pytest.approx(box.centre[j]) and abs(s.value - mu[:, j].mean()) <= box.step
    assert any(b.label == "Reset to the mean code" for b in at.button)


def test_autoencoder_grid_spans_the_codes_and_offers_no_prior_sample(ae_dir, monkeypatch):
    at = _open(run_app(ae_dir, monkeypatch, "mnist-ae-z2"), "Manifold grid")
    assert at.radio(key="grid.mnist-ae-z2.mode").options == ["Grid over the test codes' range", "Plane through a point"]
    assert "no prior whose quantiles" in _caption(at)
    at.radio(key="grid.mnist-ae-z2.mode").set_value("Plane through a point").run()
    src = at.selectbox(key="grid.mnist-ae-z2.base.src")
    assert "Prior sample" not in src.options and src.value == "Mean code"
    assert "test-code SDs around mean code" in _caption(at)


def test_an_upload_on_an_autoencoder_shows_its_code_among_the_test_codes(ae_dir, monkeypatch):
    at = _open(run_app(ae_dir, monkeypatch, "mnist-dae-z5"), "Encode an upload")
    at.file_uploader(key="upload_file").upload("digit.png", _digit_png(), "image/png").run()
    assert not at.exception and not at.main.error
    code_chart = at.get("plotly_chart")[0].proto.spec
    assert "the code z(x) per dimension" in code_chart and "error_x" not in code_chart  # no sigma to show
    assert any("Judging how typical this code is would need a prior" in t for t in _texts(at))
    assert any("Euclidean distance between codes" in t for t in _texts(at))
    at.button(key="upload.mnist-dae-z5.send").click().run()
    _open(at, "Interpolate")
    at.selectbox(key="interp.mnist-dae-z5.a.src").set_value("Upload").run()
    assert not at.exception and len(at.get("image")) == 1


def test_compare_tab_defaults_to_the_trio_and_shows_everything(ae_dir, monkeypatch):
    at = _open(run_app(ae_dir, monkeypatch, "mnist-ae-z2"), "Compare")
    assert not at.exception
    assert at.multiselect(key="compare.models").value == [n for n, _ in TRIO]
    assert len(at.get("plotly_chart")) == 1 and len(at.get("image")) == 3
    md = [m.value for m in at.markdown]
    table = next(m for m in md if m.startswith("| "))
    assert all(n in table.splitlines()[0] for n, _ in TRIO) and "kNN digit accuracy" in table
    verdicts = [m for m in md if m.startswith("*") and not m.startswith("**")]
    assert len(verdicts) == 4
    assert all(any(w in m.lower() for w in ("supported", "partly", "testable")) for m in verdicts)
    spec = at.get("plotly_chart")[0].proto.spec
    assert "N(0, I): 1, 2, 3 SD" in spec and spec.count('"range"') >= 6  # shared axes, fixed ranges


def test_compare_measures_a_model_without_stored_figures_on_request(ae_dir, monkeypatch):
    at = run_app(ae_dir, monkeypatch, "mnist-dae-z5")
    at.session_state["compare.models"] = ["mnist-z2", "mnist-dae-z5"]
    _open(at, "Compare")
    assert any("No stored figures for mnist-dae-z5" in t for t in _texts(at))
    button = next(b for b in at.button if b.label.startswith("Measure mnist-dae-z5"))
    button.click().run()
    assert not at.exception
    # measured here: with the dataset folder when there is one, else on the codes alone
    table = next(m.value for m in at.markdown if m.value.startswith("| "))
    assert "mnist-dae-z5" in table.splitlines()[0]


def test_compare_with_one_model_asks_for_another(ae_dir, monkeypatch):
    at = run_app(ae_dir, monkeypatch)
    at.session_state["compare.models"] = ["mnist-z2"]
    _open(at, "Compare")
    assert any("Pick two or three" in i.value for i in at.info) and not at.get("plotly_chart")


def test_compare_survives_a_broken_compare_file(ae_dir, tmp_path, monkeypatch):
    for p in ae_dir.glob("*.safetensors"):
        (tmp_path / p.name).write_bytes(p.read_bytes())
    (tmp_path / compare_store.FILE_NAME).write_text('{"format": "vae-latent-explorer-compare", "models": [')
    at = _open(run_app(tmp_path, monkeypatch), "Compare")
    assert not at.exception and any("not JSON" in t for t in _texts(at))
    assert len(at.get("plotly_chart")) == 1


SHIPPED_KINDS = {e.kind for e in models.discover(SHIPPED_DIR) if e.ok and e.z_dim == 2 and e.dataset == "mnist"}


@pytest.mark.skipif(SHIPPED_KINDS != {"vae", "ae", "dae"}, reason="the shipped 2-D VAE, AE and DAE are not all here")
def test_compare_tab_on_the_shipped_checkpoints(monkeypatch):
    at = _open(run_app(SHIPPED_DIR, monkeypatch), "Compare")
    assert not at.exception
    assert at.multiselect(key="compare.models").value == ["mnist-z2", "mnist-ae-z2", "mnist-dae-z2"]
    assert not any("No stored figures" in t for t in _texts(at)), "rerun python -m bench.compare_autoencoders"
    assert len([m for m in at.markdown if m.value.startswith("*") and not m.value.startswith("**")]) == 4
