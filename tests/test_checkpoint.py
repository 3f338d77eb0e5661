"""Checkpoint format: bit-exact round trip, a verified checksum, and one-line refusals of bad files
(truncated at every byte, foreign, tampered, oversized, non-regular, not float32, not finite)."""

import json
import os
import stat
import threading

import pytest
import torch
from safetensors.torch import save as st_save

from tests.checkpoint_tools import TINY, read_raw, rewrite, tiny_checkpoint, write_raw
from trainer import checkpoint as C
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
    assert not any(p.requires_grad for p in ck.model.parameters()) and not ck.model.training
    for k, v in arrays.items():
        assert torch.equal(ck.arrays[k], v) and ck.arrays[k].dtype == v.dtype
    assert ck.meta["metrics"]["test_elbo"] == -1.5 and ck.warnings == []
    z = torch.randn(4, 3)
    assert torch.equal(ck.model.decode(z), model.decode(z))
    config, meta = read_metadata(path)
    assert config == model.config and meta["name"] == "m"
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())


def test_checksum_recorded_and_verified(ckpt):
    path = ckpt[0]
    ck = load_checkpoint(path)
    md, tensors = read_raw(path)
    assert ck.checksum == md["checksum"] == C.content_digest(md, tensors) and ck.checksum.startswith("sha256:")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # one bit of the last weight stored
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="m.safetensors: checksum mismatch: the file was modified or damaged"):
        load_checkpoint(path)


def test_file_without_checksum_still_loads(tmp_path):
    path = tiny_checkpoint(tmp_path / "old.safetensors")
    md, tensors = read_raw(path)
    write_raw(path, md, tensors, checksum=False)  # what every file written before checksums looks like
    ck = load_checkpoint(path)
    assert ck.checksum is None and ck.config == TINY
    assert all(torch.equal(ck.arrays[k], tensors[f"arrays.{k}"]) for k in ck.arrays)


def test_written_with_the_permissions_of_a_plain_open(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    path = tiny_checkpoint(tmp_path / "m.safetensors")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_truncated_at_every_byte_refused(tmp_path):
    path = tiny_checkpoint(tmp_path / "t.safetensors")
    size = path.stat().st_size
    assert size < 6_000  # small enough to try every length: header length, header, every tensor
    for cut in range(size - 1, -1, -1):
        os.truncate(path, cut)
        with pytest.raises(CheckpointError, match="t.safetensors"):
            load_checkpoint(path)
        try:  # the header alone may be intact: then reading it succeeds
            read_metadata(path)
        except CheckpointError as e:
            assert "t.safetensors" in str(e) and "\n" not in str(e)


def test_garbage_and_missing_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    for data in (b"", b"\x00" * 64, b"\xff" * 8 + b"{}", (2).to_bytes(8, "little") + b"{}", b"x" * 100):
        bad.write_bytes(data)
        with pytest.raises(CheckpointError, match="bad.safetensors"):
            load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_wrong_version_refused(ckpt):
    path = ckpt[0]
    rewrite(path, md={"format_version": "99"})
    with pytest.raises(CheckpointError, match="version '99', this program reads version 1"):
        load_checkpoint(path)


def test_foreign_safetensors_refused(tmp_path):
    p = tmp_path / "foreign.safetensors"
    p.write_bytes(st_save({"w": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="not a vae-latent-explorer"):
        load_checkpoint(p)
    p.write_bytes(st_save({"w": torch.zeros(2)}, metadata={"format": "x" * 10_000}))
    with pytest.raises(CheckpointError, match="not a vae-latent-explorer") as e:
        read_metadata(p)
    assert len(str(e.value)) < 300


def test_unknown_metadata_key_refused(ckpt):
    path = ckpt[0]
    rewrite(path, md={"mfta": "{}"})  # e.g. one flipped bit in the key "meta"
    with pytest.raises(CheckpointError, match="unexpected metadata"):
        load_checkpoint(path)


def test_config_weights_mismatch_refused(ckpt):
    path = ckpt[0]
    rewrite(path, config={"z_dim": 4})
    with pytest.raises(CheckpointError, match="does not match the weights: size mismatch for fc_mu.weight"):
        load_checkpoint(path)
    rewrite(path, config={"z_dim": 3, "likelihood": "bernoulli"})
    with pytest.raises(CheckpointError, match=r"does not match the weights: Unexpected key\(s\).*fc_out_logvar"):
        load_checkpoint(path)


def test_missing_weight_refused(ckpt):
    path = ckpt[0]
    rewrite(path, drop=("model.fc_mu.weight",))
    with pytest.raises(CheckpointError, match=r"Missing key\(s\) in state_dict: \"fc_mu.weight\""):
        load_checkpoint(path)


def test_huge_config_refused_before_anything_is_built(ckpt):
    """z_dim = 10**6 used to build a 3 GB model before the shapes were compared."""
    path = ckpt[0]
    original = path.read_bytes()
    for change, message in (({"z_dim": 10**6}, "z_dim must be in"), ({"hidden": [10**6, 256]}, "hidden entries"),
                            ({"hidden": [60_000, 60_000]}, "parameters, at most"),
                            ({"z_dim": 10.0}, "z_dim must be an integer"), ({"z_dim": True}, "integer"),
                            ({"min_logvar": "abc"}, "min_logvar"), ({"image_shape": [28]}, "image_shape")):
        path.write_bytes(original)
        rewrite(path, config=change)
        with pytest.raises(CheckpointError, match=message):
            read_metadata(path)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)


def test_non_float32_weights_refused(ckpt):
    path = ckpt[0]
    w = read_raw(path)[1]["model.fc_mu.weight"]
    for dtype in (torch.float64, torch.float16, torch.bfloat16, torch.int32):
        rewrite(path, tensors={"model.fc_mu.weight": w.to(dtype)})
        with pytest.raises(CheckpointError, match="'model.fc_mu.weight' is .*, expected float32"):
            load_checkpoint(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("name", ["model.fc_out.bias", "arrays.test_mu", "state.optim.0.exp_avg"])
def test_non_finite_tensors_refused(tmp_path, name, bad):
    path = tiny_checkpoint(tmp_path / "t.safetensors")
    t = read_raw(path)[1][name].clone()
    t.view(-1)[-1] = bad
    rewrite(path, tensors={name: t})
    with pytest.raises(CheckpointError, match=f"'{name}' holds NaN or infinite values"):
        load_checkpoint(path, with_state=True)


def test_oversized_file_refused_unread(tmp_path, monkeypatch):
    path = tiny_checkpoint(tmp_path / "big.safetensors")
    monkeypatch.setattr(C, "MAX_FILE_BYTES", path.stat().st_size - 1)
    with pytest.raises(CheckpointError, match="more than the"):
        load_checkpoint(path)


def _finishes(fn, seconds: float = 20.0):
    """Run ``fn`` in a daemon thread; its outcome (result or exception), or fail if it blocks."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["value"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "blocked"
    return out["value"]


def test_non_regular_files_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    (tmp_path / "dir.safetensors").mkdir()
    (tmp_path / "dangling.safetensors").symlink_to(tmp_path / "nowhere")
    (tmp_path / "device.safetensors").symlink_to("/dev/zero")
    try:
        for name, message in (("fifo", "not a regular file"), ("dir", "not a regular file"),
                              ("dangling", "no such checkpoint file"), ("device", "not a regular file")):
            for reader in (load_checkpoint, read_metadata):
                e = _finishes(lambda reader=reader, name=name: reader(tmp_path / f"{name}.safetensors"))
                assert isinstance(e, CheckpointError) and f"{name}.safetensors: {message}" in str(e), e
    finally:  # should a reader be blocked on the FIFO, a writer releases it
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_refused(tmp_path):
    path = tiny_checkpoint(tmp_path / "locked.safetensors")
    path.chmod(0)
    with pytest.raises(CheckpointError, match="locked.safetensors: cannot open: Permission denied"):
        load_checkpoint(path)


def test_writer_refuses_meta_the_reader_would_drop(tmp_path):
    model = VAE(TINY)
    for meta in ({"title": ["x"]}, {"kl_per_dim": [1.0]}, {"dataset": 3}, [1, 2]):
        with pytest.raises(CheckpointError, match="not written"):
            save_checkpoint(tmp_path / "w.safetensors", model, meta)
    assert not list(tmp_path.iterdir())


def test_float_arrays_stored_as_float32(tmp_path):
    mu64 = torch.zeros(3, 2, dtype=torch.float64)
    path = save_checkpoint(tmp_path / "f.safetensors", VAE(TINY), {}, {"test_mu": mu64})
    assert load_checkpoint(path).arrays["test_mu"].dtype == torch.float32
    md = read_raw(path)[0]
    assert json.loads(md["model_config"]) == TINY.to_dict()
