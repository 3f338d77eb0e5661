"""Discovering and loading checkpoints, one bad file never hiding the others; decode/encode."""

import os
from pathlib import Path

import numpy as np
import pytest

from explorer import models
from tests.explorer_fixtures import make_checkpoint


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    make_checkpoint(tmp_path / "mnist-z2.safetensors", "mnist", 2)
    make_checkpoint(tmp_path / "frey-z3.safetensors", "frey", 3, n_test=20)
    (tmp_path / "garbage.safetensors").write_bytes(b"not a checkpoint")
    good = (tmp_path / "mnist-z2.safetensors").read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    return tmp_path


def test_discover_reports_bad_files_and_keeps_good_ones(folder):
    entries = {e.path.name: e for e in models.discover(folder)}
    assert set(entries) == {"mnist-z2.safetensors", "frey-z3.safetensors", "garbage.safetensors",
                            "truncated.safetensors"}
    assert entries["mnist-z2.safetensors"].ok and entries["mnist-z2.safetensors"].z_dim == 2
    assert entries["frey-z3.safetensors"].dataset == "frey"
    assert not entries["garbage.safetensors"].ok and "garbage.safetensors" in entries["garbage.safetensors"].error
    # a truncated file is caught at discovery or at load; either way with a message naming it
    t = entries["truncated.safetensors"]
    err = t.error or models.load(t.path)[1]
    assert err and "truncated.safetensors" in err


def test_load_never_raises(folder):
    ck, err = models.load(folder / "garbage.safetensors")
    assert ck is None and "garbage.safetensors" in err
    ck, err = models.load(folder / "missing.safetensors")
    assert ck is None and "no such" in err
    ck, err = models.load(folder / "mnist-z2.safetensors")
    assert err is None and ck.config.z_dim == 2


def test_default_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv(models.CHECKPOINT_DIR_ENV, str(tmp_path))
    assert models.default_checkpoint_dir() == tmp_path
    monkeypatch.delenv(models.CHECKPOINT_DIR_ENV)
    assert models.default_checkpoint_dir() == models.REPO_ROOT / "checkpoints"


def test_decode_encode_shapes(folder):
    ck, _ = models.load(folder / "frey-z3.safetensors")
    z = np.zeros((4, 5, 3), np.float32)
    x = models.decode(ck, z)
    assert x.shape == (4, 5, 28, 20) and 0 <= x.min() and x.max() <= 1
    mu, logvar = models.encode(ck, x[0])
    assert mu.shape == logvar.shape == (5, 3)
    mu1, _ = models.encode(ck, x[0, 0])
    assert mu1.shape == (3,) and np.allclose(mu1, mu[0], atol=1e-6)
    with pytest.raises(ValueError, match="3-D latent"):
        models.decode(ck, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="takes"):
        models.encode(ck, np.zeros((28, 28)))


def test_check_arrays(tmp_path):
    ck, _ = models.load(make_checkpoint(tmp_path / "a.safetensors", "mnist", 3))
    assert models.check_arrays(ck) == {}
    ck, _ = models.load(make_checkpoint(tmp_path / "b.safetensors", "mnist", 3, drop_arrays=("test_embedding",)))
    assert set(models.check_arrays(ck)) == {"test_embedding"}
    ck, _ = models.load(make_checkpoint(tmp_path / "c.safetensors", "mnist", 3, drop_arrays=("test_mu",)))
    assert set(models.check_arrays(ck)) == set(models.TEST_ARRAYS)


def test_kl_per_dim_and_architecture(tmp_path):
    ck, _ = models.load(make_checkpoint(tmp_path / "a.safetensors", "mnist", 4))
    assert np.allclose(models.kl_per_dim(ck), np.linspace(2, 0, 4))
    del ck.meta["kl_per_dim"]
    kl = models.kl_per_dim(ck)  # falls back to the stored test means and log-variances
    assert kl.shape == (4,) and np.all(kl >= 0)
    assert models.architecture(ck).startswith("784-8-4 encoder, 4-8-784 decoder, relu, bernoulli")


def test_discover_names_every_kind_of_bad_file(tmp_path):
    """Files that are not regular, not objects, or absurd: each becomes an entry with a reason
    naming it (never an exception), beside the good one."""
    from tests.checkpoint_tools import put, rewrite

    good = make_checkpoint(tmp_path / "good.safetensors", "mnist", 2)
    for i, meta in enumerate(["[]", "null", "7", '"s"', "[" * 100_000]):
        rewrite(put(tmp_path / f"meta{i}.safetensors", good.read_bytes()), md={"meta": meta})
    rewrite(put(tmp_path / "zdim.safetensors", good.read_bytes()), config={"z_dim": 10**6})
    os.mkfifo(tmp_path / "fifo.safetensors")
    (tmp_path / "dir.safetensors").mkdir()
    (tmp_path / "dangling.safetensors").symlink_to(tmp_path / "nowhere")
    entries = models.discover(tmp_path)
    assert [e.name for e in entries if e.ok] == ["good"]
    bad = [e for e in entries if not e.ok]
    assert len(bad) == 9 and all(e.path.name in e.error and "\n" not in e.error for e in bad)
    for e in bad:
        assert models.load(e.path)[0] is None


def test_discover_rereads_a_replaced_file(tmp_path):
    path = make_checkpoint(tmp_path / "m.safetensors", "mnist", 2)
    assert [(e.dataset, e.z_dim) for e in models.discover(tmp_path)] == [("mnist", 2)]
    assert models.discover(tmp_path)[0] is models.discover(tmp_path)[0]  # unchanged file: kept
    make_checkpoint(path, "frey", 3)  # an atomic rewrite, as the trainer does
    assert [(e.dataset, e.z_dim) for e in models.discover(tmp_path)] == [("frey", 3)]
    path.write_bytes(b"now broken")  # an edit in place
    assert "m.safetensors" in models.discover(tmp_path)[0].error


def test_kl_per_dim_is_the_trainers_closed_form(tmp_path):
    ck, _ = models.load(make_checkpoint(tmp_path / "a.safetensors", "mnist", 3))
    del ck.meta["kl_per_dim"]
    mu, lv = ck.arrays["test_mu"].double(), ck.arrays["test_logvar"].double()
    expected = (0.5 * (mu**2 + lv.exp() - 1 - lv)).mean(0).numpy()  # Appendix B, by hand
    assert np.allclose(models.kl_per_dim(ck), expected, rtol=1e-5)
