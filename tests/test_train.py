"""Training runs on tiny synthetic IDX data: two epochs, resume, NaN stop, CLI."""

import gzip
import json
import math
import struct

import numpy as np
import pytest
import torch

from trainer.checkpoint import load_checkpoint
from trainer.train import TrainConfig, TrainingDiverged, lr_at, train

pytestmark = pytest.mark.filterwarnings("ignore::trainer.data.DataWarning")


def _write_idx(path, arr: np.ndarray):
    magic = 2051 if arr.ndim == 3 else 2049
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    """300 train / 60 test synthetic 28x28 'digits' (bars at a label-dependent position)."""
    rng = np.random.default_rng(0)
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    for split, n in (("train", 300), ("t10k", 60)):
        y = rng.integers(0, 10, n)
        x = np.zeros((n, 28, 28), np.uint8)
        for i, lab in enumerate(y):
            x[i, 4:24, 2 + 2 * lab : 5 + 2 * lab] = 255
        x = np.clip(x + rng.integers(0, 30, x.shape), 0, 255)
        _write_idx(d / f"{split}-images-idx3-ubyte.gz", x)
        _write_idx(d / f"{split}-labels-idx1-ubyte.gz", y)
    return tmp_path / "data"


def _cfg(data_dir, out, **kw):
    base = dict(dataset="mnist", data_dir=str(data_dir), out=str(out), hidden=(32,), z_dim=3, epochs=2,
                batch_size=32, iwae_k=20, umap=False, progress=False, bf16=False)
    base.update(kw)
    return TrainConfig(**base)


def test_two_epoch_run_writes_a_complete_checkpoint(tiny_mnist, tmp_path):
    path = train(_cfg(tiny_mnist, tmp_path / "m.safetensors"))
    ck = load_checkpoint(path)
    assert ck.state is None
    m = ck.meta
    assert [h["epoch"] for h in m["history"]] == [1, 2]
    assert m["history"][1]["test_elbo"] > m["history"][0]["test_elbo"] - 5
    assert m["metrics"]["test_iwae_ll"] >= m["metrics"]["test_elbo"] - 1.0
    assert m["metrics"]["iwae_k"] == 20 and m["metrics"]["n_test"] == 60
    assert ck.arrays["test_mu"].shape == (60, 3) and ck.arrays["test_logvar"].shape == (60, 3)
    assert ck.arrays["test_embedding"].shape == (60, 2) and ck.arrays["test_labels"].shape == (60,)
    assert len(m["kl_per_dim"]) == 3 and m["image_shape"] == [28, 28] and m["likelihood"] == "bernoulli"
    assert m["provenance"] and m["train_config"]["z_dim"] == 3 and m["wall_time_s"] > 0


def test_same_seed_same_result(tiny_mnist, tmp_path):
    a = load_checkpoint(train(_cfg(tiny_mnist, tmp_path / "a.safetensors", epochs=1, iwae_k=0)))
    b = load_checkpoint(train(_cfg(tiny_mnist, tmp_path / "b.safetensors", epochs=1, iwae_k=0)))
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k])


@pytest.mark.parametrize("stop_at", [3, 10])  # mid-epoch, and exactly at the epoch boundary (10 steps/epoch)
@pytest.mark.parametrize("bf16", [False, True])
def test_resume_equals_uninterrupted(tiny_mnist, tmp_path, stop_at, bf16):
    kw = dict(epochs=2, iwae_k=0, lr_schedule="cosine", kl_warmup_epochs=1, bf16=bf16)
    full = load_checkpoint(train(_cfg(tiny_mnist, tmp_path / "full.safetensors", **kw)))
    out = tmp_path / "int.safetensors"
    cfg = _cfg(tiny_mnist, out, **kw)
    train(cfg, callback=lambda step: step == stop_at)
    partial = load_checkpoint(out, with_state=True)
    assert partial.state is not None and partial.meta["resume"]["step"] == stop_at
    resumed = load_checkpoint(train(cfg, resume=True))
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert full.meta["history"][-1]["test_elbo"] == resumed.meta["history"][-1]["test_elbo"]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_mnist, tmp_path):
    out = tmp_path / "nan.safetensors"
    cfg = _cfg(tiny_mnist, out, epochs=3, iwae_k=0)

    def poison(step):
        if step == 15:  # in epoch 2: corrupt a weight so the next loss is NaN
            ck_model = poison.model
            with torch.no_grad():
                next(ck_model.parameters()).fill_(float("nan"))

    import trainer.train as tt

    orig = tt.VAE

    class Spy(orig):
        def __init__(self, c):
            super().__init__(c)
            poison.model = self

    tt.VAE = Spy
    try:
        with pytest.raises(TrainingDiverged, match="last good checkpoint"):
            train(cfg, callback=poison)
    finally:
        tt.VAE = orig
    ck = load_checkpoint(out, with_state=True)
    assert len(ck.meta["history"]) == 1  # end of epoch 1, the last good state
    assert all(torch.isfinite(v).all() for v in ck.model.state_dict().values())


def test_lr_schedules():
    c = TrainConfig(lr=1e-3, lr_min=1e-5, lr_schedule="cosine", epochs=10)
    assert lr_at(c, 0, 100) == pytest.approx(1e-3) and lr_at(c, 1000, 100) == pytest.approx(1e-5)
    assert 1e-5 < lr_at(c, 500, 100) < 1e-3
    e = TrainConfig(lr=1e-3, lr_schedule="exponential", lr_gamma=0.5, epochs=10)
    assert lr_at(e, 200, 100) == pytest.approx(2.5e-4)


def test_cli_train_info_evaluate(tiny_mnist, tmp_path, capsys):
    from trainer.__main__ import main

    out = tmp_path / "cli.safetensors"
    assert main(["train", "--data-dir", str(tiny_mnist), "--out", str(out), "--hidden", "16", "--z-dim", "2",
                 "--epochs", "1", "--batch-size", "50", "--iwae-k", "0", "--no-progress", "--no-bf16"]) == 0
    assert main(["info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert info["model_config"]["z_dim"] == 2 and "history" not in info
    assert main(["evaluate", str(out), "--k", "10", "--data-dir", str(tiny_mnist)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_test"] == 60 and res["k"] == 10 and math.isfinite(res["test_iwae_ll"])
    assert res["test_iwae_ll"] >= res["test_elbo"] - 1.0
    assert main(["evaluate", str(tmp_path / "missing.safetensors")]) == 1
    assert "no such checkpoint" in capsys.readouterr().err


def test_resume_without_state_is_a_clear_error(tiny_mnist, tmp_path):
    from trainer.checkpoint import CheckpointError

    cfg = _cfg(tiny_mnist, tmp_path / "done.safetensors", epochs=1, iwae_k=0)
    train(cfg)
    with pytest.raises(CheckpointError, match="no training state"):
        train(cfg, resume=True)


def test_ctrl_c_saves_resumable_checkpoint_and_resume_finishes(tiny_mnist, tmp_path):
    """A real SIGINT to the CLI: exit 0, a resumable checkpoint, then --resume completes the run."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "sig.safetensors"
    args = [sys.executable, "-m", "trainer", "train", "--data-dir", str(tiny_mnist), "--out", str(out),
            "--hidden", "16", "--z-dim", "2", "--epochs", "120", "--batch-size", "32", "--iwae-k", "0",
            "--no-umap", "--no-bf16", "--no-progress", "--threads", "1"]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not out.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert out.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint within 60 s"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "resumable" in err
    ck = load_checkpoint(out, with_state=True)
    assert ck.state is not None and 0 < len(ck.meta["history"]) < 120
    done = subprocess.run(args + ["--resume"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    final = load_checkpoint(out)
    assert final.state is None and len(final.meta["history"]) == 120


def test_dynamic_binarisation_is_bernoulli_of_the_grey_level():
    from trainer.train import binarize_batch

    x = torch.tensor([[0.0, 0.1, 0.5, 0.9, 1.0]]).expand(40_000, 5).contiguous()
    b = binarize_batch(x, torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(b.mean(0), x[0], atol=0.01)
    assert b[:, 0].sum() == 0 and b[:, 4].sum() == 40_000
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(b, (u < x).float())  # the same draw as comparing with a uniform
