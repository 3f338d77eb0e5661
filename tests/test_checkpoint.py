"""Checkpoint format: bit-exact round trip, and clear refusals of bad files."""

import json

import pytest
import torch
from safetensors.torch import save as st_save

from trainer.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from trainer.model import VAE, VAEConfig


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    model = VAE(VAEConfig(image_shape=(6, 5), hidden=(12, 8), z_dim=3, likelihood="gaussian"))
    arrays = {"test_mu": torch.randn(10, 3), "test_labels": torch.arange(10)}
    path = save_checkpoint(tmp_path / "m.safetensors", model, {"name": "m", "metrics": {"test_elbo": -1.5}}, arrays)
    return path, model, arrays


def test_round_trip_is_bit_exact(ckpt):
    path, model, arrays = ckpt
    ck = load_checkpoint(path)
    assert ck.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(ck.model.state_dict()[k], v)
    for k, v in arrays.items():
        assert torch.equal(ck.arrays[k], v) and ck.arrays[k].dtype == v.dtype
    assert ck.meta["metrics"]["test_elbo"] == -1.5
    z = torch.randn(4, 3)
    assert torch.equal(ck.model.decode(z), model.decode(z))
    config, meta = read_metadata(path)
    assert config == model.config and meta["name"] == "m"
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())


def test_truncated_file_refused(ckpt):
    path = ckpt[0]
    data = path.read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="m.safetensors"):
            load_checkpoint(path)


def test_garbage_and_missing_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "nope.safetensors")


def _rewrite(path, md_update=None, drop=None, tensors_update=None):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        md = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    md.update(md_update or {})
    for k in drop or ():
        tensors.pop(k)
    tensors.update(tensors_update or {})
    path.write_bytes(st_save(tensors, metadata=md))


def test_wrong_version_refused(ckpt):
    path = ckpt[0]
    _rewrite(path, {"format_version": "99"})
    with pytest.raises(CheckpointError, match="version"):
        load_checkpoint(path)


def test_foreign_safetensors_refused(tmp_path):
    p = tmp_path / "foreign.safetensors"
    p.write_bytes(st_save({"w": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="not a vae-latent-explorer"):
        load_checkpoint(p)


def test_config_weights_mismatch_refused(ckpt):
    path = ckpt[0]
    config = json.loads(read_metadata(path)[0].to_dict().__repr__().replace("'", '"'))
    config["z_dim"] = 4
    _rewrite(path, {"model_config": json.dumps(config)})
    with pytest.raises(CheckpointError, match="does not match the weights"):
        load_checkpoint(path)


def test_missing_weight_refused(ckpt):
    path = ckpt[0]
    _rewrite(path, drop=["model.fc_mu.weight"])
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)
