"""Data-parallel training (trainer/distributed.py) and the --device choice.

Multi-process tests run real gloo process groups on 127.0.0.1 with free ports: torchrun for the
command line (a run, Ctrl-C, --resume, a failing rank) and torch.multiprocessing with ``env://``
for the in-process API (the equivalence with one process, resume at the same and at another
world size). Tiny models on 300 synthetic images: seconds of CPU each, more wall time on a
loaded machine (every process imports torch).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.__main__ import main
from trainer.checkpoint import load_checkpoint
from trainer.distributed import GlobalDraws, Placement, rank_label, resolve_device, shard_bounds
from trainer.folder_cache import open_folder_dataset
from trainer.memmap_images import BatchInput
from trainer.train import ConfigError, _train, binarize_batch, train

from .test_folder_cache import make_pngs
from .test_train import _cfg, tiny_mnist, write_tiny_mnist  # noqa: F401  (tiny_mnist: a fixture)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::trainer.data.DataWarning")
NO_GPU = not torch.cuda.is_available()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    # gloo on the loopback interface only; warnings (unofficial md5 of the synthetic files) off
    return dict(os.environ, PYTHONWARNINGS="ignore", GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")


def _torchrun(*args: str, script: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
            "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
            *(script or ["-m", "trainer"]), *args]


def _cli_args(data_dir, out, epochs: int) -> list[str]:
    return ["train", "--data-dir", str(data_dir), "--out", str(out), "--hidden", "16", "--z-dim", "2",
            "--epochs", str(epochs), "--batch-size", "32", "--iwae-k", "10", "--no-umap", "--no-bf16",
            "--device", "cpu", "--matmul-precision", "highest"]


def _weights(path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model.state_dict()


def _assert_close(a: dict, b: dict) -> None:
    for k, v in a.items():
        torch.testing.assert_close(v, b[k], rtol=1e-5, atol=1e-6, msg=k)


# --- pieces, in one process --------------------------------------------------------------------

@given(st.integers(0, 5000), st.integers(1, 16))
@settings(max_examples=200, deadline=None)
def test_shard_bounds_tile_the_batch_in_rank_order(n, world):
    bounds = [shard_bounds(n, r, world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 7, 128])
def test_each_rank_draws_its_rows_of_the_global_batch_noise(world, n):
    """Binarisation (B, D) and the reparameterisation's eps (L, B, J): the ranks' slices put
    together are the one-process draw, and the generator ends in the same state on every rank."""
    full_gen = torch.Generator().manual_seed(5)
    x = torch.rand(n, 12, generator=torch.Generator().manual_seed(1))
    full_bin = binarize_batch(x, full_gen)
    full_eps = torch.randn((3, n, 4), generator=full_gen)
    parts_bin, parts_eps = [], []
    for rank in range(world):
        gen = torch.Generator().manual_seed(5)
        lo, hi = shard_bounds(n, rank, world)
        if hi == lo:
            continue
        with GlobalDraws(gen, lo, hi, n):
            parts_bin.append(binarize_batch(x[lo:hi], gen))
            parts_eps.append(torch.randn((3, hi - lo, 4), generator=gen))
        assert torch.equal(gen.get_state(), full_gen.get_state())
    assert torch.equal(torch.cat(parts_bin), full_bin)
    assert torch.equal(torch.cat(parts_eps, 1), full_eps)


def test_draws_the_global_batch_cannot_match_are_refused():
    gen = torch.Generator().manual_seed(0)
    other = torch.Generator().manual_seed(0)
    with GlobalDraws(gen, 2, 4, 8):
        with pytest.raises(RuntimeError, match="bernoulli"):
            torch.bernoulli(torch.full((2, 3), 0.5), generator=gen)
        with pytest.raises(RuntimeError, match="dimension -2"):
            torch.rand((5, 3), generator=gen)
        assert torch.rand((5, 3), generator=other).shape == (5, 3)  # another generator: untouched


def test_device_choice_without_a_gpu():
    assert resolve_device("cpu") == torch.device("cpu")
    if NO_GPU:
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
    else:
        assert resolve_device("auto").type == "cuda"


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present: --device cuda is accepted")
def test_cli_refuses_device_cuda_without_a_gpu_in_one_line(tmp_path, capsys):
    code = main(["train", "--device", "cuda", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "m.st")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --device: no CUDA GPU") and "\n" not in err
    assert not (tmp_path / "m.st").exists()


@pytest.mark.skipif(NO_GPU, reason="no CUDA GPU")
def test_cuda_run_trains_resumes_and_loads_on_the_cpu(tiny_mnist, tmp_path):  # noqa: F811
    kw = dict(epochs=2, iwae_k=10, device="cuda", bf16=True, lr_schedule="cosine")
    full = load_checkpoint(train(_cfg(tiny_mnist, tmp_path / "full.safetensors", **kw)))
    assert len(full.meta["history"]) == 2 and full.meta["metrics"]["test_iwae_ll"] < 0
    assert next(full.model.parameters()).device.type == "cpu"
    out = tmp_path / "int.safetensors"
    train(_cfg(tiny_mnist, out, **kw), callback=lambda step: step == 3)
    resumed = _weights(train(_cfg(tiny_mnist, out, **kw), resume=True))
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed[k]), k


def test_global_batch_smaller_than_the_world_is_refused(tiny_mnist, tmp_path):  # noqa: F811
    cfg = _cfg(tiny_mnist, tmp_path / "m.safetensors", batch_size=1)
    with pytest.raises(ConfigError, match="number of processes"):
        _train(cfg, False, None, Placement(torch.device("cpu"), rank=0, world=2))


def test_a_run_leaves_the_process_float_maths_as_it_found_it(tiny_mnist, tmp_path):  # noqa: F811
    """Training flushes denormals to zero (a CPU flag for the whole process) and turns it off after."""
    import math

    train(_cfg(tiny_mnist, tmp_path / "m.safetensors", epochs=1, iwae_k=0))
    assert math.nextafter(0.0, 1.0) > 0.0


def test_rank_label_comes_from_torchrun_variables(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert rank_label() == "rank 3/4: "
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert rank_label() == ""


def test_rebuild_is_refused_inside_torchrun(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(["rebuild", "--only", "frey-z2"]) == 2
    assert "rebuild runs in one process" in capsys.readouterr().err


# --- two processes, in-process API (torch.multiprocessing, env:// on 127.0.0.1) --------------------

def _folder_cfg(f: Path, out: Path, **kw):
    """An image-folder run on the fixture's folder ``f / "imgs"`` (8x6 grey, cache in ``f / "cache"``)."""
    return _cfg(f / "unused", out, dataset="folder", image_folder=str(f / "imgs"), image_size=(8, 6),
                cache_dir=str(f / "cache"), epochs=1, batch_size=32, device="cpu", matmul_precision="highest",
                iwae_k=0, **kw)


def _record_reads(rows: list) -> None:
    """Note the cache rows every training batch of this process reads (the loop's BatchInput)."""
    read = BatchInput.__getitem__

    def spy(self, idx):
        rows.append(self.images.rows[np.asarray(idx)])
        return read(self, idx)

    BatchInput.__getitem__ = spy  # this spawned process only


def _worker(rank: int, port: int, data_dir: str, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=2)
    f = Path(folder)
    common = dict(device="cpu", matmul_precision="highest", iwae_k=0)
    try:
        rows: list = []
        _record_reads(rows)
        train(_folder_cfg(f, f / "folder.safetensors"))
        np.save(f / f"rows{rank}.npy", np.concatenate(rows))
        for batch in (128, 299):  # even shares; uneven ones (150/149) and an empty share (last batch: 1 row)
            train(_cfg(data_dir, f / f"ddp{batch}.safetensors", epochs=1, batch_size=batch, **common))
        kw = dict(epochs=2, batch_size=8, lr_schedule="cosine", kl_warmup_epochs=1, **common)
        train(_cfg(data_dir, f / "full.safetensors", **kw))
        out = f / "int.safetensors"
        # only rank 0 asks for a stop; the ranks agree on it at the next poll (step 16, mid-epoch 1)
        train(_cfg(data_dir, out, **kw), callback=lambda step: step == 3 and rank == 0)
        if rank == 0:
            shutil.copy(out, f / "int_copy.safetensors")
        dist.barrier()
        train(_cfg(data_dir, out, **kw), resume=True)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory):
    """The checkpoints the 2-process worker writes (one spawn for all of them)."""
    folder = tmp_path_factory.mktemp("ddp")
    data_dir = write_tiny_mnist(folder)
    make_pngs(folder / "imgs", counts=(("a", 70), ("b", 64)), loose=2)  # 123 train images: 3 x 32 + 27 (shares 14 / 13)
    mp.spawn(_worker, args=(_free_port(), str(data_dir), str(folder)), nprocs=2, join=True)
    return data_dir, folder


@pytest.mark.parametrize("batch", [128, 299])
def test_two_ranks_train_like_one_process_on_the_whole_batch(two_rank_runs, tmp_path, batch):
    """One epoch with 2 ranks x (batch / 2) reaches the weights of 1 process x batch, dynamic
    binarisation and eps included (every rank draws the global batch's noise and keeps its rows);
    matmul precision "highest" so that only the order of float additions differs."""
    data_dir, folder = two_rank_runs
    single = train(_cfg(data_dir, tmp_path / "one.safetensors", epochs=1, batch_size=batch, device="cpu",
                        matmul_precision="highest", iwae_k=0))
    _assert_close(_weights(folder / f"ddp{batch}.safetensors"), _weights(single))
    a, b = load_checkpoint(folder / f"ddp{batch}.safetensors").meta, load_checkpoint(single).meta
    assert a["history"][0]["train_elbo"] == pytest.approx(b["history"][0]["train_elbo"], rel=1e-6)
    assert a["n_train"] == b["n_train"] == 300  # rank 0's file covers the whole training set


def test_two_ranks_train_an_image_folder_from_one_cache_each_reading_its_own_rows(two_rank_runs, tmp_path):
    """--dataset folder under DDP: the cache is built once and shared, each rank reads only the
    cache rows of its shares (together every training image once per epoch), and the run equals one
    process's."""
    _, folder = two_rank_runs
    ds = open_folder_dataset(folder / "imgs", (8, 6), cache_dir=folder / "cache", progress=False)
    assert not ds.built and len(list(ds.cache_path.parent.glob("8x6-*"))) == 1
    r0, r1 = np.load(folder / "rows0.npy"), np.load(folder / "rows1.npy")
    assert len(r0) + len(r1) == len(ds.train_x) and not set(r0.tolist()) & set(r1.tolist())
    assert np.array_equal(np.sort(np.concatenate([r0, r1])), np.sort(ds.train_x.rows))
    single = train(_folder_cfg(folder, tmp_path / "one.safetensors"))
    _assert_close(_weights(folder / "folder.safetensors"), _weights(single))
    assert load_checkpoint(single).meta["n_train"] == len(ds.train_x) == 123 and len(r0) == 62


def test_resume_under_ddp_is_exact_and_any_world_size_continues(two_rank_runs, tmp_path):
    data_dir, folder = two_rank_runs
    stopped = load_checkpoint(folder / "int_copy.safetensors", with_state=True)
    assert stopped.meta["resume"]["step"] == 16 and stopped.meta["resume"]["batch_idx"] == 16  # agreed mid-epoch
    full = _weights(folder / "full.safetensors")
    resumed = _weights(folder / "int.safetensors")
    for k, v in full.items():  # same world size: bit for bit
        assert torch.equal(v, resumed[k]), k
    # the 2-rank checkpoint resumed by one process continues the same run (float rounding apart)
    cfg = _cfg(data_dir, folder / "int_copy.safetensors", epochs=2, batch_size=8, lr_schedule="cosine",
               kl_warmup_epochs=1, device="cpu", matmul_precision="highest", iwae_k=0)
    _assert_close(full, _weights(train(cfg, resume=True)))


# --- two processes, the command line (torchrun) ------------------------------------------------------

def _run(cmd: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)


def test_torchrun_ctrl_c_saves_once_and_resume_finishes(tiny_mnist, tmp_path):  # noqa: F811
    """Ctrl-C reaches torchrun, which passes SIGINT to both processes: they agree on a step, rank 0
    alone writes a resumable file and says so once; ``--resume`` under torchrun finishes the run."""
    out = tmp_path / "sig.safetensors"
    proc = subprocess.Popen(_torchrun(*_cli_args(tiny_mnist, out, 400), "--no-progress"), cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not out.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert out.exists(), proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert err.count("Saved resumable checkpoint") == 1 and err.count("Interrupted (SIGINT)") == 1, err[-3000:]
    assert "error:" not in err
    ck = load_checkpoint(out, with_state=True)
    epochs_done = ck.meta["resume"]["epoch"]
    assert ck.state is not None and 0 < epochs_done < 400 and len(ck.meta["history"]) == epochs_done
    assert not list(tmp_path.glob(".*.tmp"))

    done = _run(_torchrun(*_cli_args(tiny_mnist, out, epochs_done + 1), "--resume"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(out)  # the path, printed by rank 0 only
    assert done.stderr.count(f"epoch {epochs_done + 1}/{epochs_done + 1}: train ELBO") == 1
    final = load_checkpoint(out)
    assert final.state is None and len(final.meta["history"]) == epochs_done + 1
    assert final.meta["metrics"]["iwae_k"] == 10 and final.meta["n_train"] == 300


def test_a_failing_rank_ends_the_run_in_one_line_and_keeps_the_last_good_checkpoint(tiny_mnist, tmp_path):  # noqa: F811
    out = tmp_path / "runs" / "fail.safetensors"
    # 10 steps per epoch: rank 1 raises at step 15, in epoch 2
    res = _run(_torchrun(*_cli_args(tiny_mnist, out, 3), "--no-progress",
                         script=[str(ROOT / "tests" / "ddp_fault.py"), "1", "15", "raise"]))
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error: rank 1/2")]
    assert lines == ["error: rank 1/2: RuntimeError: injected failure at step 15"], res.stderr[-3000:]
    ck = load_checkpoint(out, with_state=True)  # end of epoch 1, intact and resumable
    assert ck.meta["resume"] == {**ck.meta["resume"], "epoch": 1, "batch_idx": 0, "step": 10}
    assert len(ck.meta["history"]) == 1 and "metrics" not in ck.meta
    assert sorted(p.name for p in out.parent.iterdir()) == ["fail.safetensors"]  # no partial or temporary file
