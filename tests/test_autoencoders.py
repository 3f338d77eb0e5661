"""Autoencoder (ae) and denoising autoencoder (dae) beside the VAE: the model's kinds, their
objectives, the training config, tiny training runs, checkpoints that keep their kind, and
files written before kinds existed."""

import json
import math
import typing

import pytest
import torch
import torch.nn.functional as F

from tests.checkpoint_tools import rewrite
from tests.explorer_fixtures import make_checkpoint
from tests.test_train import _cfg, tiny_mnist  # noqa: F401 (tiny_mnist is a fixture)
from trainer import config as C
from trainer.__main__ import main
from trainer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from trainer.corruption import CORRUPTIONS, DEFAULT_LEVELS, corrupt
from trainer.evaluate import evaluate
from trainer.model import (
    KIND_LIKELIHOODS,
    KINDS,
    LIKELIHOODS,
    VAE,
    VAEConfig,
    autoencoder_loss,
    iwae_log_likelihood,
    objective,
    reconstruction_error,
)
from trainer.train import ConfigError, TrainConfig, train

pytestmark = pytest.mark.filterwarnings("ignore::trainer.data.DataWarning")


@pytest.fixture(autouse=True)
def _denormals_restored():
    """train() flushes denormals to zero process-wide (a training speed-up); later hypothesis
    tests in the same process then refuse to generate floats, so each test here restores it."""
    yield
    torch.set_flush_denormal(False)


def _model(kind: str, likelihood: str = "squared_error", z_dim: int = 2) -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(image_shape=(6, 5), hidden=(16,), z_dim=z_dim, likelihood=likelihood, kind=kind)).eval()


# --- the model -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ae", "dae"])
def test_autoencoder_code_is_deterministic_and_has_no_variance_head(kind):
    m = _model(kind)
    assert m.fc_logvar is None and not m.config.has_prior
    assert sum(p.numel() for p in m.parameters()) == m.config.n_parameters
    x = torch.rand(7, 30)
    mu, logvar = m.encode(x)
    assert mu.shape == (7, 2) and logvar is None
    out = m(x, n_samples=5)  # K is 1 whatever is asked: there is nothing to sample
    assert out["z"].shape == (1, 7, 2) and torch.equal(out["z"][0], mu) and out["logvar"] is None
    assert torch.equal(m(x)["dec"], out["dec"])
    with pytest.raises(ValueError, match="no prior"):
        m.sample(4)
    with pytest.raises(ValueError, match="no p\\(x\\)"):
        iwae_log_likelihood(m, x, k=10)


def test_reconstruction_errors_are_the_notes_objectives():
    g = torch.Generator().manual_seed(1)
    x, logits = torch.rand(4, 9, generator=g), torch.randn(3, 4, 9, generator=g)
    sse = reconstruction_error(x, logits, "squared_error")
    assert sse.shape == (3, 4) and torch.allclose(sse, ((x - torch.sigmoid(logits)) ** 2).sum(-1))
    bce = F.binary_cross_entropy(torch.sigmoid(logits), x.expand_as(logits), reduction="none").sum(-1)
    assert torch.allclose(reconstruction_error(x, logits, "bernoulli"), bce, atol=1e-4)
    assert torch.all(reconstruction_error(x, torch.logit(x.clamp(1e-4, 1 - 1e-4)), "squared_error") < 1e-6)
    with pytest.raises(ValueError):
        reconstruction_error(x, logits, "gaussian")


def test_objective_dispatches_by_kind_and_the_dae_target_is_the_clean_input():
    x = torch.rand(5, 30)
    ae = _model("ae")
    parts = objective(ae.config, x, ae(x))
    assert set(parts) == {"loss", "rec"} and torch.equal(parts["loss"], autoencoder_loss(x, ae(x))["loss"])
    noisy = x * (torch.rand(5, 30) > 0.5)
    dae = _model("dae")
    # the DAE's objective scores the reconstruction from x~ against x, not against x~
    clean_target, noisy_target = (objective(dae.config, t, dae(noisy))["loss"] for t in (x, noisy))
    assert not torch.allclose(clean_target, noisy_target)
    vae = _model("vae", "bernoulli")
    assert "elbo" in objective(vae.config, (x > 0.5).float(), vae((x > 0.5).float()))


def test_kind_and_likelihood_must_agree_in_the_model_and_the_train_config():
    for kind in KINDS:
        for lik in LIKELIHOODS:
            ok = lik in KIND_LIKELIHOODS[kind]
            try:
                VAEConfig(kind=kind, likelihood=lik)
                model_ok = True
            except ValueError:
                model_ok = False
            try:
                TrainConfig(kind=kind, likelihood=lik)
                train_ok = True
            except ConfigError as e:
                assert e.field == "likelihood" and "\n" not in str(e)
                train_ok = False
            assert model_ok == train_ok == ok, (kind, lik)
    assert set(typing.get_args(C.Kind)) == set(KINDS) and set(typing.get_args(C.Corruption)) == set(CORRUPTIONS)
    assert C._DEFAULT_LEVELS == DEFAULT_LEVELS
    assert TrainConfig(kind="ae").default_likelihood() == "squared_error"
    assert TrainConfig(kind="dae").default_corruption() == ("masking", 0.3)
    assert TrainConfig(kind="dae", corruption="salt_pepper").default_corruption() == ("salt_pepper", 0.2)


@pytest.mark.parametrize("kw, field", [
    (dict(kind="ae", corruption="masking"), "corruption"),
    (dict(kind="vae", corruption_level=0.1), "corruption_level"),
    (dict(kind="dae", corruption="masking", corruption_level=1.5), "corruption_level"),
    (dict(kind="dae", corruption="salt_pepper", corruption_level=2.0), "corruption_level"),
    (dict(kind="dae", corruption="gaussian", corruption_level=-0.1), "corruption_level"),
    (dict(kind="dae", corruption="blur"), "corruption"),
])
def test_corruption_settings_are_checked(kw, field):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**kw)
    assert info.value.field == field
    assert TrainConfig(kind="dae", corruption="gaussian", corruption_level=1.5).default_corruption()[1] == 1.5


def test_cli_refuses_a_corruption_for_an_ae_before_reading_data(tmp_path, capsys):
    rc = main(["train", "--kind", "ae", "--corruption", "masking", "--data-dir", str(tmp_path / "no-data"),
               "--out", str(tmp_path / "m.safetensors")])
    err = capsys.readouterr().err
    assert rc == 2 and "--corruption" in err and err.count("\n") == 1


# --- training ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, likelihood", [("ae", None), ("ae", "bernoulli"), ("dae", None)])
def test_tiny_autoencoder_trains_and_writes_its_kind(tiny_mnist, tmp_path, kind, likelihood):  # noqa: F811
    kw = dict(kind=kind, likelihood=likelihood, epochs=3, lr=3e-3)
    if kind == "dae":
        kw.update(corruption="salt_pepper", corruption_level=0.2)
    ck = load_checkpoint(train(_cfg(tiny_mnist, tmp_path / "m.safetensors", **kw)))
    assert ck.config.kind == kind and ck.config.likelihood == (likelihood or "squared_error")
    m, hist = ck.meta, ck.meta["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3] and "train_elbo" not in hist[0] and "beta" not in hist[0]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] and hist[-1]["test_loss"] < hist[0]["test_loss"]
    assert "test_elbo" not in m["metrics"] and "test_iwae_ll" not in m["metrics"] and "kl_per_dim" not in m
    assert m["metrics"]["test_sse"] > 0 and m["metrics"]["n_test"] == 60
    assert "test_logvar" not in ck.arrays and ck.arrays["test_mu"].shape == (60, 3)
    assert ck.arrays["test_embedding"].shape == (60, 2)
    assert m["binarized"] == (likelihood == "bernoulli")  # the squared error trains on grey levels
    if kind == "dae":
        assert m["corruption"] == {"kind": "salt_pepper", "level": 0.2} and "test_sse_corrupted" in m["metrics"]
        assert m["title"].startswith("mnist denoising autoencoder")
    else:
        assert "corruption" not in m and "test_sse_corrupted" not in m["metrics"]
    ev = evaluate(ck.path, k=10)
    assert ev["kind"] == kind and math.isclose(ev["test_sse"], m["metrics"]["test_sse"], rel_tol=1e-5)
    assert "test_elbo" not in ev and "none" in ev["log_px"]


def test_dae_resume_equals_uninterrupted(tiny_mnist, tmp_path):  # noqa: F811
    """The corruption is drawn from the run's own generator: a resumed DAE run is bit-for-bit."""
    kw = dict(kind="dae", epochs=2, lr_schedule="cosine")
    full = load_checkpoint(train(_cfg(tiny_mnist, tmp_path / "full.safetensors", **kw)))
    cfg = _cfg(tiny_mnist, tmp_path / "int.safetensors", **kw)
    train(cfg, callback=lambda step: step == 4)
    resumed = load_checkpoint(train(cfg, resume=True))
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert full.meta["history"] == [dict(h, seconds=f["seconds"]) for h, f in
                                    zip(resumed.meta["history"], full.meta["history"])]


def test_same_network_ae_and_dae_differ_only_by_the_corruption(tiny_mnist, tmp_path):  # noqa: F811
    ae = load_checkpoint(train(_cfg(tiny_mnist, tmp_path / "ae.safetensors", kind="ae", epochs=1)))
    dae = load_checkpoint(train(_cfg(tiny_mnist, tmp_path / "dae.safetensors", kind="dae", epochs=1)))
    assert ae.model.state_dict().keys() == dae.model.state_dict().keys()
    assert not torch.equal(ae.arrays["test_mu"], dae.arrays["test_mu"])


# --- checkpoints ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_round_trips_with_its_kind(tmp_path, kind):
    path = make_checkpoint(tmp_path / f"{kind}.safetensors", "mnist", 3, kind=kind)
    ck = load_checkpoint(path)
    assert ck.config.kind == kind and (ck.model.fc_logvar is None) == (kind != "vae")
    assert ("test_logvar" in ck.arrays) == (kind == "vae")
    assert (ck.meta.get("corruption") is not None) == (kind == "dae")
    again = save_checkpoint(tmp_path / "again.safetensors", ck.model, ck.meta, ck.arrays)
    ck2 = load_checkpoint(again)
    assert ck2.config == ck.config and ck2.meta == ck.meta


def test_checkpoints_without_a_kind_load_as_vaes_unchanged(tmp_path):
    """Files written before kinds existed (no ``kind`` in their model config) are VAEs."""
    path = make_checkpoint(tmp_path / "old.safetensors", "mnist", 2)
    old_config = {k: v for k, v in load_checkpoint(path).config.to_dict().items() if k != "kind"}
    rewrite(path, md={"model_config": json.dumps(old_config)})
    ck = load_checkpoint(path)
    assert ck.config.kind == "vae" and ck.model.fc_logvar is not None and "kind" not in json.dumps(old_config)
    assert ck.model.sample(2).shape == (2, 784)


@pytest.mark.parametrize("bad", ["", "VAE", "gan", 1, None, ["ae"]])
def test_unknown_kind_refused_in_one_line(tmp_path, bad):
    path = make_checkpoint(tmp_path / "m.safetensors", "mnist", 2)
    rewrite(path, config={"kind": bad})
    with pytest.raises(CheckpointError, match="kind") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_ae_weights_under_a_vae_config_refused(tmp_path):
    """An AE's weights lack fc_logvar: a config claiming a VAE is named as a mismatch."""
    path = make_checkpoint(tmp_path / "m.safetensors", "mnist", 2, kind="ae")
    rewrite(path, config={"kind": "vae", "likelihood": "bernoulli"})
    with pytest.raises(CheckpointError, match="fc_logvar"):
        load_checkpoint(path)


@pytest.mark.parametrize("bad", [{"kind": "blur", "level": 0.3}, {"kind": "masking", "level": -1},
                                 {"kind": "masking", "level": "0.3"}, "masking", [0.3]])
def test_bad_corruption_meta_dropped_on_read_and_refused_on_write(tmp_path, bad):
    path = make_checkpoint(tmp_path / "m.safetensors", "mnist", 2, kind="dae")
    ck = load_checkpoint(path)
    with pytest.raises(CheckpointError, match="corruption"):
        save_checkpoint(tmp_path / "w.safetensors", ck.model, dict(ck.meta, corruption=bad), ck.arrays)
    rewrite(path, meta={"corruption": bad})
    ck = load_checkpoint(path)
    assert "corruption" not in ck.meta and any("corruption" in w for w in ck.warnings)


@pytest.mark.parametrize("kind", CORRUPTIONS)
@pytest.mark.parametrize("world", [2, 3])
def test_dae_corruption_under_ddp_is_the_one_process_draw(kind, world):
    """Under torchrun each rank corrupts its rows of the global batch inside GlobalDraws (as
    binarisation): put together, the ranks' inputs are the one-process corruption."""
    from trainer.distributed import GlobalDraws, shard_bounds

    n = 7
    x = torch.rand(n, 12, generator=torch.Generator().manual_seed(1))
    full = corrupt(x, kind, DEFAULT_LEVELS[kind], generator=torch.Generator().manual_seed(5))
    parts = []
    for rank in range(world):
        lo, hi = shard_bounds(n, rank, world)
        g = torch.Generator().manual_seed(5)
        with GlobalDraws(g, lo, hi, n):
            parts.append(corrupt(x[lo:hi], kind, DEFAULT_LEVELS[kind], generator=g))
    torch.testing.assert_close(torch.cat(parts), full)
