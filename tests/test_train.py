"""Training runs on tiny synthetic IDX data: two epochs, resume, NaN stop, signals, config checks, CLI."""

import ctypes
import dataclasses
import gzip
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
import types
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer import config as C
from trainer.__main__ import main
from trainer.checkpoint import load_checkpoint
from trainer.data import DATASETS
from trainer.model import ACTIVATIONS, LIKELIHOODS
from trainer.train import ConfigError, TrainConfig, TrainingDiverged, lr_at, train

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.filterwarnings("ignore::trainer.data.DataWarning")


def _write_idx(path, arr: np.ndarray):
    magic = 2051 if arr.ndim == 3 else 2049
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    """300 train / 60 test synthetic 28x28 'digits' (bars at a label-dependent position)."""
    return write_tiny_mnist(tmp_path)


def write_tiny_mnist(tmp_path: Path) -> Path:
    """The tiny_mnist files under ``tmp_path / "data"``; returns that data folder."""
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


def test_folder_run_trains_and_evaluates_from_its_image_folder(tmp_path):
    """dataset=folder: train reads --image-folder at --image-size; evaluate finds the same folder
    from the checkpoint's train_config (or the folder given as data_dir)."""
    from PIL import Image

    from trainer.evaluate import evaluate

    rng = np.random.default_rng(1)
    for label in ("dark", "light"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(20):
            base = 40 if label == "dark" else 200
            Image.fromarray(np.clip(base + rng.integers(-30, 30, (11, 7)), 0, 255).astype(np.uint8)).save(
                tmp_path / "images" / label / f"{i}.png")
    cfg = TrainConfig(dataset="folder", image_folder=str(tmp_path / "images"), image_size=(12, 9),
                      data_dir=str(tmp_path / "unused"), out=str(tmp_path / "f.safetensors"), hidden=(8,), z_dim=2,
                      epochs=1, batch_size=16, iwae_k=5, progress=False)
    ck = load_checkpoint(train(cfg))
    assert ck.config.image_shape == (12, 9) and ck.meta["label_names"] == ["dark", "light"]
    a = evaluate(ck.path, k=5)
    b = evaluate(ck.path, k=5, data_dir=str(tmp_path / "images"))
    assert a["n_test"] == b["n_test"] == ck.meta["n_test"] == 4 and a["test_elbo"] == b["test_elbo"]


def test_resume_without_state_is_a_clear_error(tiny_mnist, tmp_path):
    from trainer.checkpoint import CheckpointError

    cfg = _cfg(tiny_mnist, tmp_path / "done.safetensors", epochs=1, iwae_k=0)
    train(cfg)
    with pytest.raises(CheckpointError, match="no training state"):
        train(cfg, resume=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_a_resumable_checkpoint(tiny_mnist, tmp_path, sig):
    """A real SIGINT / SIGTERM to the CLI: exit 0 and a resumable checkpoint (that --resume then
    continues bit-for-bit is test_resume_equals_uninterrupted)."""
    out = tmp_path / "sig.safetensors"
    args = [sys.executable, "-m", "trainer", "train", "--data-dir", str(tiny_mnist), "--out", str(out),
            "--hidden", "16", "--z-dim", "2", "--epochs", "120", "--batch-size", "32", "--iwae-k", "0",
            "--no-umap", "--no-bf16", "--no-progress", "--threads", "1"]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not out.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert out.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint within 60 s"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert sig.name in err and "resumable" in err
    ck = load_checkpoint(out, with_state=True)
    assert ck.state is not None and "metrics" not in ck.meta
    assert 0 < len(ck.meta["history"]) < 120 and ck.meta["resume"]["step"] > 0


def test_stale_temp_files_of_the_same_output_are_removed_on_start(tiny_mnist, tmp_path):
    """kill -9 between a save's fsync and its rename leaves ``.<name>.*.tmp``; the next run on
    that output removes it (and nothing else); the checkpoint itself was never half-written."""
    out = tmp_path / "m.safetensors"
    killed_mid_save = (
        "import os, signal, sys\n"
        "from trainer.checkpoint import save_checkpoint\n"
        "from trainer.model import VAE, VAEConfig\n"
        "os.replace = os.rename = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        "save_checkpoint(sys.argv[1], VAE(VAEConfig(hidden=(4,), z_dim=2)), {})\n")
    r = subprocess.run([sys.executable, "-c", killed_mid_save, str(out)], cwd=ROOT, timeout=120)
    assert r.returncode == -signal.SIGKILL
    assert len(list(tmp_path.glob(".m.safetensors.*.tmp"))) == 1 and not out.exists()
    others = [tmp_path / ".other.safetensors.abc123de.tmp", tmp_path / "m.safetensors.tmp"]
    for o in others:
        o.write_bytes(b"not ours")
    train(_cfg(tiny_mnist, out, epochs=1, iwae_k=0))
    assert list(tmp_path.glob(".m.safetensors.*")) == [] and all(o.exists() for o in others)
    assert load_checkpoint(out).meta["history"][0]["epoch"] == 1


# --- the config is checked before any data is read ------------------------------------------------

def _bad_value(t, rule):
    """A strategy of values a TrainConfig field of type ``t`` with range ``rule`` must refuse."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    wrong_type = st.sampled_from([object(), b"x", {1}]) | st.text(max_size=3) | st.none()
    # Floats as k / 1000 rather than st.floats: train() flushes denormals to zero process-wide,
    # which breaks hypothesis's float generation in the same process.
    steps = st.integers(1, 10**12).map(lambda k: k / 1000)
    if origin in (typing.Union, types.UnionType):  # X | None: what X refuses, except None
        return _bad_value(next(a for a in args if a is not type(None)), rule).filter(lambda v: v is not None)
    if origin is typing.Literal:
        return st.text(max_size=8).filter(lambda v: v not in args) | st.integers() | wrong_type
    if t is bool:
        return st.integers(0, 1) | wrong_type
    if t is str:
        return st.just("") | st.integers() | wrong_type.filter(lambda v: not isinstance(v, str))
    if origin is tuple:
        n = 1 if args[-1] is Ellipsis else len(args)
        one_bad = st.lists(_bad_value(int, rule), min_size=1, max_size=1).map(lambda b: tuple([28] * (n - 1) + b))
        return one_bad | st.just(tuple([28] * (n + 1)) if args[-1] is not Ellipsis else "28") | wrong_type
    below = rule.get("ge", rule.get("gt"))
    if t is int:
        out = st.booleans() | st.sampled_from([2.5, 3.0, math.nan]) | wrong_type
        if below is not None:
            out |= st.integers(max_value=below - 1 if "ge" in rule else below)
        if "le" in rule:
            out |= st.integers(min_value=rule["le"] + 1)
        return out
    out = st.sampled_from([math.nan, math.inf, -math.inf]) | st.booleans() | wrong_type
    if below is not None:
        out |= steps.map(lambda d: below - d) | (st.just(below) if "gt" in rule else st.nothing())
    if "le" in rule:
        out |= steps.map(lambda d: rule["le"] + d)
    return out


_HINTS = typing.get_type_hints(TrainConfig)
_BAD = st.sampled_from(dataclasses.fields(TrainConfig)).flatmap(
    lambda f: st.tuples(st.just(f.name), _bad_value(_HINTS[f.name], f.metadata)))


@settings(max_examples=300, deadline=None)
@given(_BAD)
def test_every_field_refuses_values_out_of_its_range(bad):
    name, value = bad
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{name: value})
    assert info.value.field == name and "\n" not in str(info.value)
    cfg = TrainConfig()
    setattr(cfg, name, value)  # changed after it was made: train() checks again before reading data
    with pytest.raises(ConfigError):
        train(cfg)


@pytest.mark.parametrize("argv, flag", [
    (["--threads", "-1"], "--threads"),
    (["--beta", "-1"], "--beta"),
    (["--kl-warmup-epochs", "-2"], "--kl-warmup-epochs"),
    (["--kl-warmup-epochs", "nan"], "--kl-warmup-epochs"),
    (["--min-logvar", "nan"], "--min-logvar"),
    (["--iwae-k", "-1"], "--iwae-k"),
    (["--lr-gamma", "0"], "--lr-gamma"),
    (["--lr", "inf"], "--lr"),
    (["--epochs", "0"], "--epochs"),
    (["--hidden", "64", "0"], "--hidden"),
    (["--out", ""], "--out"),
    (["--out", "runs/"], "--out"),
    (["--dataset", "folder"], "--image-folder"),
    (["--activation", "sigmoid"], "--activation"),  # choices from the Literal type
    (["--image-size", "28"], "--image-size"),  # exactly two values
    (["--z-dim", "2.5"], "--z-dim"),
])
def test_cli_refuses_bad_values_in_one_line_before_reading_data(tmp_path, capsys, argv, flag):
    out = tmp_path / "m.safetensors"
    try:
        rc = main(["train", "--data-dir", str(tmp_path / "no-data"), "--out", str(out), *argv])
    except SystemExit as e:  # argparse's own refusals (choices, number of values, types)
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and flag in err, err
    assert "no-data" not in err and not out.exists()


def _without_root_override() -> None:
    """preexec_fn: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the child's capability
    bounding set, so file modes apply to it even when the tests run as root (as in CI)."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unwritable_output_folder_is_reported_before_reading_data(tmp_path, capsys):
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o555)
    args = [sys.executable, "-m", "trainer", "train", "--data-dir", str(tmp_path / "no-data"),
            "--out", str(ro / "m.safetensors")]
    try:
        r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120,
                           preexec_fn=_without_root_override)
    except subprocess.SubprocessError as e:
        pytest.skip(f"cannot drop root's file-permission override here: {e}")
    finally:
        ro.chmod(0o755)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "--out: cannot write in" in r.stderr and "Permission denied" in r.stderr
    assert list(ro.iterdir()) == []
    (tmp_path / "a-file").write_text("")  # a file where the output folder should be, and a folder as --out
    for bad_out in (tmp_path / "a-file" / "m.safetensors", tmp_path):
        assert main(["train", "--data-dir", str(tmp_path / "no-data"), "--out", str(bad_out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --out: ") and err.count("\n") == 1 and "no-data" not in err


def test_resume_of_a_missing_checkpoint_is_reported_before_reading_data(tmp_path, capsys):
    assert main(["train", "--resume", "--data-dir", str(tmp_path / "no-data"),
                 "--out", str(tmp_path / "none.safetensors")]) == 1
    err = capsys.readouterr().err
    assert "cannot resume" in err and "no such checkpoint" in err and "no-data" not in err


def test_cli_flags_come_from_the_config_fields(monkeypatch, capsys):
    """Every TrainConfig field is a flag with its metadata's help; Literal types give the choices;
    the Literal sets are the ones the model and the loaders accept."""
    monkeypatch.setenv("COLUMNS", "400")  # one help line per flag
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for f in dataclasses.fields(TrainConfig):
        assert C.flag(f.name) in text and f.metadata["help"] in text, f.name
    assert "--activation {relu,tanh,softplus,elu}" in text and "--image-size H W" in text
    assert set(typing.get_args(C.Activation)) == set(ACTIVATIONS)
    assert typing.get_args(C.Likelihood) == LIKELIHOODS and typing.get_args(C.Dataset) == DATASETS


def test_dynamic_binarisation_is_bernoulli_of_the_grey_level():
    from trainer.train import binarize_batch

    x = torch.tensor([[0.0, 0.1, 0.5, 0.9, 1.0]]).expand(40_000, 5).contiguous()
    b = binarize_batch(x, torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(b.mean(0), x[0], atol=0.01)
    assert b[:, 0].sum() == 0 and b[:, 4].sum() == 40_000
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(b, (u < x).float())  # the same draw as comparing with a uniform
