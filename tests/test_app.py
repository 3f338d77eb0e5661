"""The Streamlit app under AppTest: every view with every checkpoint (tiny ones built here,
and every shipped one in checkpoints/), sliders, uploads, map selection, bad files. One module
(about 420 lines) because every test shares the same tiny checkpoint folders; the Directions,
Likelihood and bad-checkpoint AppTests have modules of their own."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer import models, preprocess
from tests.apptest import APP, run_app
from tests.explorer_fixtures import make_checkpoint
from trainer.checkpoint import save_checkpoint
from trainer.model import VAE, VAEConfig

SHIPPED_DIR = models.REPO_ROOT / "checkpoints"
VIEWS = ["Manifold grid", "Sliders", "Live", "Map", "Encode an upload", "Draw", "Interpolate", "Directions",
         "Model card"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ckpts")
    make_checkpoint(d / "mnist-z2.safetensors", "mnist", 2)
    make_checkpoint(d / "mnist-z5.safetensors", "mnist", 5)
    make_checkpoint(d / "frey-z3.safetensors", "frey", 3, n_test=20)
    make_checkpoint(d / "nomap-z4.safetensors", "mnist", 4, drop_arrays=("test_embedding", "test_index"))
    (d / "broken.safetensors").write_bytes(b"this is not a checkpoint")
    return d


def _open(at: AppTest, view: str) -> AppTest:
    at.session_state["view"] = view
    return at.run()


def _image_urls(at: AppTest) -> list[str]:
    return [im.proto.imgs[0].url for im in at.get("image")]


def _digit_png(w=90, h=120) -> bytes:
    a = np.full((h, w), 255, np.uint8)
    a[20:100, 30:42] = 0
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _slider(at: AppTest, name: str, j: int):
    """The Sliders tab's slider j of model ``name`` (its key carries the point's revision)."""
    revs = at.session_state["z.rev"] if "z.rev" in at.session_state else {}
    return at.slider(key=f"slider.{name}.{revs.get(name, 0)}.{j}")


def _texts(at: AppTest) -> list[str]:
    return [str(e.value) for group in (at.caption, at.markdown, at.info) for e in group]


def _plotly_array(v) -> np.ndarray:
    """An array from a plotly spec: a list, or ``{"dtype", "bdata"}`` (base64) as plotly writes numpy arrays."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
    return np.asarray(v, dtype=np.float64)


def _check_upload(at: AppTest, ck) -> None:
    """Upload a PNG: the page shows every preprocessing step in order, then the model input beside
    its reconstruction, and the mu +- sigma chart holds the model's own q(z|x) of that input (an
    autoencoder's: its code z(x), no sigma)."""
    data = _digit_png()
    at.file_uploader(key="upload_file").upload("digit.png", data, "image/png").run()
    assert not at.exception and not at.main.error, [e.value for e in at.main.error]
    prep = preprocess.prepare(data, preprocess.style_for_dataset(ck.meta.get("dataset", "")), ck.image_shape)
    captions = [im.proto.imgs[0].caption for im in at.get("image")]
    n = len(prep.steps)
    assert len(captions) > n and all(c.startswith(s.title) for c, s in zip(captions, prep.steps)), captions
    assert captions[n].startswith("model input | reconstruction"), captions
    with torch.no_grad():
        mu, logvar = ck.model.encode(torch.from_numpy(prep.x.reshape(1, -1).astype(np.float32)))
    # a VAE: one trace, mu with sigma error bars; an autoencoder: its code over the test codes' band
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][-1]
    np.testing.assert_allclose(_plotly_array(chart["x"]), mu[0].numpy(), atol=1e-5)
    if logvar is None:
        assert "error_x" not in chart
    else:
        sd = (0.5 * logvar[0]).exp().numpy()
        np.testing.assert_allclose(_plotly_array(chart["error_x"]["array"]), sd, rtol=1e-4)
    assert at.button(key=f"upload.{ck.name}.send").label == "Use as the current point"


def _check_view(at: AppTest, view: str, z_dim: int, name: str, has_map: bool = True, ck=None) -> None:
    assert not at.exception, f"{name} / {view}: {[e.value for e in at.exception]}"
    if view == "Manifold grid":
        assert len(at.get("image")) == 1 and len(at.get("download_button")) == 1
    elif view == "Sliders":
        for j in range(z_dim):
            _slider(at, name, j)  # raises KeyError if missing
        assert len(at.get("image")) == 1
    elif view == "Map":
        if has_map:
            assert len(at.get("plotly_chart")) == 1
        else:
            assert any("no usable map" in i.value for i in at.info)
    elif view == "Encode an upload":
        _check_upload(at, ck)
    elif view == "Interpolate":
        assert len(at.get("image")) == 1 and len(at.get("download_button")) == 2
    elif view == "Live":  # the browser-side decoder; server side it states the weights it sent
        assert any("decoder weights" in t for t in _texts(at))
    elif view == "Draw":
        assert any("Draw a" in t for t in _texts(at))
    elif view == "Directions":
        assert len(at.get("image")) >= 1 or at.info
    elif view == "Model card":  # exactly what it shows: test_model_card_shows_the_checkpoint
        # training curves when there is a history, KL per dimension when the checkpoint has what it takes;
        # prior samples, or for an autoencoder the sentence saying it has no prior to sample
        charts = bool(ck.meta.get("history")) + (models.kl_per_dim(ck) is not None)
        no_prior = any("would need a prior" in t for t in _texts(at))
        assert len(at.get("plotly_chart")) == charts and len(at.get("image")) == (0 if no_prior else 1)
        assert len(at.get("metric")) == 4


def _every_view(folder: Path, monkeypatch, name: str, z_dim: int, has_map: bool = True) -> None:
    ck, err = models.load(folder / f"{name}.safetensors")
    assert ck is not None, err
    at = run_app(folder, monkeypatch, name)
    for view in VIEWS:
        _open(at, view)
        _check_view(at, view, z_dim, name, has_map, ck)


@pytest.mark.parametrize("name, z_dim", [("mnist-z2", 2), ("mnist-z5", 5), ("frey-z3", 3)])
def test_every_view_tiny(tiny_dir, monkeypatch, name, z_dim):
    _every_view(tiny_dir, monkeypatch, name, z_dim)


SHIPPED = [e for e in models.discover(SHIPPED_DIR)]


@pytest.mark.skipif(not SHIPPED, reason="no shipped checkpoints in checkpoints/")
@pytest.mark.parametrize("entry", SHIPPED, ids=[e.path.name for e in SHIPPED])
def test_every_view_shipped(monkeypatch, entry):
    assert entry.ok, entry.error
    ck, err = models.load(entry.path)
    assert ck is not None, err
    has_map = not {"test_mu", "test_labels", "test_embedding"} & set(models.check_arrays(ck))
    _every_view(SHIPPED_DIR, monkeypatch, entry.name, entry.z_dim, has_map)


@pytest.mark.skipif(not SHIPPED, reason="no shipped checkpoints in checkpoints/")
@pytest.mark.parametrize("entry", SHIPPED, ids=[e.path.name for e in SHIPPED])
def test_shipped_checkpoints_carry_the_app_arrays(entry):
    ck, err = models.load(entry.path)
    assert ck is not None, err
    assert models.check_arrays(ck) == {}
    # a finished run: no optimizer state (an interrupted one is resumable, twice the size) and under 8 MB
    assert "metrics" in ck.meta and "resume" not in ck.meta, f"{entry.name}: unfinished run (train ... --resume)"
    assert entry.path.stat().st_size < 8 << 20, f"{entry.name}: {entry.path.stat().st_size} bytes"


def test_bad_checkpoint_reported_others_usable(tiny_dir, monkeypatch):
    at = run_app(tiny_dir, monkeypatch)
    errors = [e.value for e in at.sidebar.error]
    assert any("broken.safetensors" in e for e in errors)
    assert at.selectbox(key="model").options == ["mnist-z2", "nomap-z4", "mnist-z5", "frey-z3"]
    assert at.selectbox(key="model").value == "mnist-z2"  # MNIST first, smallest latent first
    assert len(at.get("image")) == 1


def test_missing_arrays_degrade_gracefully(tiny_dir, monkeypatch):
    at = run_app(tiny_dir, monkeypatch, "nomap-z4")
    assert any("test_embedding" in w.value for w in at.sidebar.warning)
    for view in VIEWS:
        _open(at, view)
        assert not at.exception, view
    _open(at, "Map")
    assert len(at.get("plotly_chart")) == 0 and any("no usable map" in i.value for i in at.info)


def test_no_checkpoints(tmp_path, monkeypatch):
    at = run_app(tmp_path, monkeypatch)
    assert not at.exception and "No usable checkpoints" in at.error[0].value


def test_model_from_url(tiny_dir, monkeypatch):
    monkeypatch.setenv(models.CHECKPOINT_DIR_ENV, str(tiny_dir))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["model"] = "frey-z3"
    at.run()
    assert at.selectbox(key="model").value == "frey-z3"


def test_slider_changes_decoded_image(tiny_dir, monkeypatch):
    at = _open(run_app(tiny_dir, monkeypatch, "mnist-z5"), "Sliders")
    before = _image_urls(at)
    _slider(at, "mnist-z5", 1).set_value(2.5).run()
    after = _image_urls(at)
    assert not at.exception and len(after) == 1 and after != before
    assert at.session_state["z"]["mnist-z5"] == pytest.approx([0, 2.5, 0, 0, 0])
    # far out: the page says so
    for j in range(5):
        _slider(at, "mnist-z5", j).set_value(4.0)
    at.run()
    assert any("far outside the prior" in m.value for m in at.markdown)
    at.button(key="sl.mnist-z5.reset").click().run()
    assert [_slider(at, "mnist-z5", j).value for j in range(5)] == [0.0] * 5
    at.button(key="sl.mnist-z5.rand").click().run()
    assert any(_slider(at, "mnist-z5", j).value != 0.0 for j in range(5))


def test_grid_follows_the_slider_point(tiny_dir, monkeypatch):
    at = _open(run_app(tiny_dir, monkeypatch, "mnist-z5"), "Manifold grid")
    base_url = _image_urls(at)
    at.selectbox(key="grid.mnist-z5.base.src").set_value("Current point").run()
    assert _image_urls(at) == base_url  # the slider point starts at the origin
    _slider(_open(at, "Sliders"), "mnist-z5", 0).set_value(1.5).run()
    _open(at, "Manifold grid")
    assert _image_urls(at) != base_url
    at.radio(key="grid.mnist-z5.dirs").set_value("Two principal directions of the encoded test set").run()
    assert not at.exception and len(at.get("image")) == 1


def test_fig4_grid_size(tiny_dir, monkeypatch):
    at = _open(run_app(tiny_dir, monkeypatch, "mnist-z2"), "Manifold grid")
    assert at.radio(key="grid.mnist-z2.mode").value.startswith("Fig. 4")
    at.slider(key="grid.mnist-z2.n").set_value(5).run()
    assert "5x5 decoded means" in at.get("image")[0].proto.imgs[0].caption


def test_upload_produces_encoding(tiny_dir, monkeypatch):
    at = _open(run_app(tiny_dir, monkeypatch, "mnist-z5"), "Encode an upload")
    at.file_uploader(key="upload_file").upload("digit.png", _digit_png(), "image/png").run()
    assert not at.exception and not at.main.error
    # 6 preprocessing steps, input|reconstruction, nearest neighbours (+ originals if data is here)
    assert len(at.get("image")) >= 8
    assert len(at.get("plotly_chart")) == 2  # mu +- sigma, the upload on the map
    at.button(key="upload.mnist-z5.send").click().run()
    z = at.session_state["z"]["mnist-z5"]
    assert len(z) == 5 and any(v != 0 for v in z)
    _open(at, "Sliders")
    assert [_slider(at, "mnist-z5", j).value for j in range(5)] == pytest.approx(z)
    # the upload is kept when the tab closes, and other views can use it
    _open(at, "Interpolate")
    at.selectbox(key="interp.mnist-z5.a.src").set_value("Upload").run()
    assert not at.exception and not at.main.error and len(at.get("image")) == 1


@pytest.mark.parametrize(
    "data, message",
    [(b"", "empty"), (b"not an image" * 20, "not an image"), (_digit_png()[:300], "truncated or corrupt")],
)
def test_bad_upload_error_and_app_keeps_working(tiny_dir, monkeypatch, data, message):
    at = _open(run_app(tiny_dir, monkeypatch, "mnist-z2"), "Encode an upload")
    at.file_uploader(key="upload_file").upload("bad.png", data, "image/png").run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    _open(at, "Sliders")
    assert not at.exception and len(at.get("image")) == 1


def test_upload_frey_style(tiny_dir, monkeypatch):
    at = _open(run_app(tiny_dir, monkeypatch, "frey-z3"), "Encode an upload")
    img = (np.random.default_rng(0).random((300, 200)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG")
    at.file_uploader(key="upload_file").upload("face.jpg", buf.getvalue(), "image/jpeg").run()
    assert not at.exception and not at.main.error and len(at.get("image")) >= 5


def test_map_selection_shows_reconstructions(tiny_dir, monkeypatch):
    at = _open(run_app(tiny_dir, monkeypatch, "mnist-z5"), "Map")
    assert len(at.get("image")) == 0
    at.session_state["map.mnist-z5"] = {
        "selection": {"points": [{"customdata": 3}, {"customdata": 7}], "point_indices": [3, 7], "box": [], "lasso": []}
    }
    at.run()
    assert not at.exception
    assert any("2 selected" in m.value for m in at.markdown)
    assert len(at.get("image")) >= 1  # reconstructions (and originals when the dataset is here)
    at.button(key="map.mnist-z5.send").click().run()
    mu3 = models.load(tiny_dir / "mnist-z5.safetensors")[0].arrays["test_mu"][3].numpy()
    assert at.session_state["z"]["mnist-z5"] == pytest.approx(np.round(mu3 / 0.05) * 0.05, abs=1e-6)


@pytest.fixture(scope="module")
def more_dir(tmp_path_factory) -> Path:
    """A 20-D MNIST model and an image-folder model, beside a Frey one."""
    d = tmp_path_factory.mktemp("more_ckpts")
    make_checkpoint(d / "mnist-z20.safetensors", "mnist", 20)
    make_checkpoint(d / "frey-z3.safetensors", "frey", 3, n_test=20)
    make_checkpoint(d / "pics-z2.safetensors", "folder", 2, n_test=20)
    return d


def test_typicality_at_the_origin_of_a_20d_model(more_dir, monkeypatch):
    at = _open(run_app(more_dir, monkeypatch, "mnist-z20"), "Sliders")
    text = " ".join(m.value for m in at.markdown)
    # Both tails: the origin is not "typical" in 20-D, it is closer than 97.5% of prior draws.
    assert ":blue[atypically close to the mean]" in text and ":green[typical]" not in text
    assert "||z||² = 0.00, at the 0.0th percentile of χ²(20)" in text
    assert "between 9.6 and 34.2" in text and "shell around ||z||² ≈ 20" in text and ":small[" in text
    # A point of norm^2 = J is typical; one far out is not.
    for j in range(20):
        _slider(at, "mnist-z20", j).set_value(1.0 if j % 2 else -1.0)
    at.run()
    assert any(":green[typical]" in m.value for m in at.markdown)


def test_typicality_at_the_origin_of_a_2d_model(tiny_dir, monkeypatch):
    at = _open(run_app(tiny_dir, monkeypatch, "mnist-z2"), "Sliders")
    assert any(":green[typical]" in m.value and "below 7.4" in m.value for m in at.markdown)


def test_unknown_model_or_view_in_the_url_says_so(tiny_dir, monkeypatch):
    monkeypatch.setenv(models.CHECKPOINT_DIR_ENV, str(tiny_dir))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["model"] = "mnist-z99"
    at.query_params["view"] = "Nowhere"
    at.run()
    warnings = [w.value for w in at.main.warning]
    assert "No model named “mnist-z99” in the URL; showing mnist-z2." in warnings
    assert "No view named “Nowhere” in the URL; showing Manifold grid." in warnings
    assert at.selectbox(key="model").value == "mnist-z2" and len(at.get("image")) == 1
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["model"] = "frey-z3"
    at.run()
    assert not at.main.warning


def test_interpolate_defaults_to_two_test_images_of_different_classes(tiny_dir, monkeypatch):
    at = _open(run_app(tiny_dir, monkeypatch, "mnist-z5"), "Interpolate")
    cap = at.get("image")[0].proto.imgs[0].caption
    assert cap.startswith("test row 0, digit 0 → test row 1, digit 1"), cap


def test_frey_captions_name_frames_not_labels(more_dir, monkeypatch):
    at = _open(run_app(more_dir, monkeypatch, "frey-z3"), "Interpolate")
    cap = at.get("image")[0].proto.imgs[0].caption
    assert cap.startswith("test row 0, frame 0 → test row ") and "label" not in cap, cap
    _open(at, "Map")
    assert any("colour: frame" in c.value for c in at.caption)


def test_draw_tab_wording_follows_the_dataset(more_dir, monkeypatch):
    for name, what in [("pics-z2", "an image"), ("frey-z3", "a face"), ("mnist-z20", "a digit")]:
        at = _open(run_app(more_dir, monkeypatch, name), "Draw")
        assert any(i.value.startswith(f"Draw {what} on the pad") for i in at.info), name


def test_one_name_for_setting_the_current_point(tiny_dir, monkeypatch):
    at = _open(run_app(tiny_dir, monkeypatch, "mnist-z5"), "Encode an upload")
    at.file_uploader(key="upload_file").upload("digit.png", _digit_png(), "image/png").run()
    assert at.button(key="upload.mnist-z5.send").label == "Use as the current point"
    assert any(m.value.startswith("**The neighbours vote:**") for m in at.markdown)
    _open(at, "Sliders")
    assert at.button(key="sl.mnist-z5.go").label == "Use as the current point"
    _open(at, "Map")
    at.session_state["map.mnist-z5"] = {"selection": {"points": [{"customdata": 3}], "point_indices": [3]}}
    at.run()
    assert at.button(key="map.mnist-z5.send").label == "Use as the current point"


def test_model_card_curves_toggle_and_open_config(tiny_dir, monkeypatch):
    at = _open(run_app(tiny_dir, monkeypatch, "mnist-z5"), "Model card")
    assert at.get("json")[0].proto.max_expand_depth == 3  # opens to its fields, not a folded "{...}"
    assert len(at.toggle) == 1 and not at.toggle[0].value  # 3 epochs: the first is left out of the y-range
    at.toggle[0].set_value(True).run()
    assert not at.exception


def test_default_grid_size_follows_the_image_size(more_dir, monkeypatch):
    at = _open(run_app(more_dir, monkeypatch, "frey-z3"), "Manifold grid")
    assert at.slider(key="grid.frey-z3.n").value == 9
    at = _open(run_app(more_dir, monkeypatch, "mnist-z20"), "Manifold grid")
    assert at.slider(key="grid.mnist-z20.n").value == 13


def test_model_card_shows_the_checkpoint(tiny_dir, monkeypatch):
    """Every figure on the card for a checkpoint whose meta is known (tests/explorer_fixtures.py)."""
    at = _open(run_app(tiny_dir, monkeypatch, "mnist-z5"), "Model card")
    assert not at.exception
    ck, _ = models.load(tiny_dir / "mnist-z5.safetensors")
    assert [h.value for h in at.subheader] == ["mnist z=5 (test)"]
    assert [(m.label, m.value) for m in at.metric] == [
        ("Dataset", "MNIST"), ("Latent size", "5"), ("Test ELBO (nats)", "-145.00"),
        ("log p(x) estimate (k=100)", "-140.00")]
    n_params = sum(p.numel() for p in ck.model.parameters())
    assert [m.value for m in at.main.markdown] == [
        f"- **Architecture:** 784-8-5 encoder, 5-8-784 decoder, relu, bernoulli likelihood ({n_params:,} parameters)\n"
        "- **Image size:** 28x28; **file:** `mnist-z5.safetensors`\n"
        "- **Test examples:** 60\n- **Training time:** 0.2 min"]
    curves, kl = (json.loads(c.proto.spec)["data"] for c in at.get("plotly_chart"))
    hist = ck.meta["history"]
    want = {f"{split} {what}": [h[f"{split}_{key}"] for h in hist]
            for split in ("train", "test") for what, key in (("ELBO", "elbo"), ("E[log p(x|z)]", "rec"), ("KL", "kl"))}
    assert {t["name"]: list(_plotly_array(t["y"])) for t in curves} == want
    assert len(kl) == 1 and list(_plotly_array(kl[0]["y"])) == pytest.approx(np.linspace(2.0, 0.0, 5))
    assert [im.proto.imgs[0].caption for im in at.get("image")] == ["64 decoded draws z ~ N(0, I)"]
    assert json.loads(at.json[0].value) == {"train_config": {"epochs": 3}, "provenance": {"dataset": "mnist"}}


def test_model_card_of_a_bare_checkpoint(tmp_path, monkeypatch):
    """Weights and a name only (no metrics, history or test-set arrays): n/a, no charts, still samples."""
    torch.manual_seed(0)
    model = VAE(VAEConfig(image_shape=(28, 20), hidden=(16,), z_dim=3, activation="tanh", likelihood="gaussian"))
    save_checkpoint(tmp_path / "bare-z3.safetensors", model, {"name": "bare-z3", "dataset": "frey"})
    at = _open(run_app(tmp_path, monkeypatch, "bare-z3"), "Model card")
    assert not at.exception
    assert [h.value for h in at.subheader] == ["bare-z3"]
    assert [(m.label, m.value) for m in at.metric] == [
        ("Dataset", "Frey Face"), ("Latent size", "3"), ("Test ELBO (nats)", "n/a"), ("log p(x) estimate", "n/a")]
    assert len(at.get("plotly_chart")) == 0 and "No training history stored." in [c.value for c in at.main.caption]
    assert [im.proto.imgs[0].caption for im in at.get("image")] == ["64 decoded draws z ~ N(0, I)"]
