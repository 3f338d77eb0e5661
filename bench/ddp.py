"""Data-parallel training on this machine's CPUs: ``torchrun --nproc-per-node 2`` against one process.

    python -m bench.ddp --data-dir ../shared/data [--rounds 3] [--out bench/results/ddp.txt]

Model: the shipped MNIST preset's MLP (784-512-256-20, Bernoulli decoder, dynamic binarisation),
batch 128 (the global batch: 64 per process under torchrun), Adam, MNIST's 60000 training images,
``--device cpu``, no final log p(x) or UMAP. Variants, each a fresh command-line run:

- ``1 proc x 2 threads``: ``python -m trainer train --threads 2`` (torch's default here);
- ``1 proc x 1 thread``: ``--threads 1``;
- ``torchrun 2 x 1 thread``: ``torchrun --nproc-per-node 2 -m trainer train --threads 1`` (gloo).

Two figures per variant and round:

- wall samples/s: 60000 / the trainer's own per-epoch loop time (rank 0's clock; the ranks step
  in lockstep), median over epochs 2..E (epoch 1 warms up);
- samples per CPU-second: each variant runs twice, with 1 and with E epochs; the difference of
  the CPU time of everything started (getrusage of children: torchrun, every worker) over the
  E - 1 extra epochs cancels start-up, data loading and the final evaluation. On a shared machine
  this is the figure that other processes' load does not move much.

Rounds alternate the variants' order; the load average is recorded around every run.

Then the anatomy of one step, in process CPU milliseconds per process (``time.process_time``,
medians of 3 x 40 steps, 2 processes spawned with gloo on 127.0.0.1): one process on 128 rows and
on 64; a DDP process on its 64 rows with and without :class:`trainer.distributed.GlobalDraws`
(every process drawing the whole batch's noise); a bare all-reduce of the model's gradients.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trainer.checkpoint import read_metadata
from trainer.distributed import GlobalDraws
from trainer.model import VAE, VAEConfig, loss_function
from trainer.train import binarize_batch

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN = 60000
TRAIN = ["train", "--dataset", "mnist", "--hidden", "512", "256", "--z-dim", "20", "--batch-size", "128",
         "--iwae-k", "0", "--no-umap", "--no-progress", "--device", "cpu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(variant: str, data_dir: str, out: Path, epochs: int) -> list[str]:
    args = [*TRAIN, "--data-dir", data_dir, "--out", str(out), "--epochs", str(epochs)]
    if variant == "torchrun 2 x 1 thread":
        return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                "--master-port", str(_free_port()), "-m", "trainer", *args, "--threads", "1"]
    threads = "2" if variant == "1 proc x 2 threads" else "1"
    return [sys.executable, "-m", "trainer", *args, "--threads", threads]


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(variant: str, data_dir: str, out: Path, epochs: int) -> dict:
    """One command-line run: its children's CPU seconds, the per-epoch loop seconds, the load."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOO_SOCKET_IFNAME="lo")
    load0, cpu0, t0 = os.getloadavg()[0], children_cpu(), time.perf_counter()
    res = subprocess.run(command(variant, data_dir, out, epochs), cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{variant}: exit {res.returncode}: {res.stderr[-2000:]}")
    cpu, wall = children_cpu() - cpu0, time.perf_counter() - t0
    history = read_metadata(out)[1]["history"]
    return {"cpu_s": cpu, "wall_s": wall, "epoch_s": [h["seconds"] for h in history],
            "load": (load0 + os.getloadavg()[0]) / 2}


def one_round(variants: list[str], data_dir: str, folder: Path, epochs: int) -> dict:
    out = {}
    for v in variants:
        short = run(v, data_dir, folder / "short.safetensors", 1)
        long = run(v, data_dir, folder / "long.safetensors", epochs)
        out[v] = {
            "samples_per_s": N_TRAIN / statistics.median(long["epoch_s"][1:]),
            "samples_per_cpu_s": N_TRAIN * (epochs - 1) / (long["cpu_s"] - short["cpu_s"]),
            "load": (short["load"] + long["load"]) / 2,
        }
    return out


VARIANTS = ["1 proc x 2 threads", "1 proc x 1 thread", "torchrun 2 x 1 thread"]


# --- the anatomy of a step ---------------------------------------------------------------------

def _steps(net, opt, x, gen, rows: int, n_global: int, draws: bool, n: int = 40) -> float:
    """CPU ms per training step on ``rows`` rows (with the global-noise context when ``draws``)."""
    c0 = time.process_time()
    for _ in range(n):
        with GlobalDraws(gen, 0, rows, n_global) if draws else contextlib.nullcontext():
            xb = binarize_batch(x[:rows], gen)
            parts = loss_function(xb, net(xb, 1, gen))
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        opt.step()
    return (time.process_time() - c0) / n * 1e3


def _setup():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = VAE(VAEConfig(hidden=(512, 256), z_dim=20))
    return model, torch.optim.Adam(model.parameters(), fused=True), torch.rand(128, 784), torch.Generator()


def _anatomy_worker(rank: int, port: int, result: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from torch.nn.parallel import DistributedDataParallel

    model, opt, x, gen = _setup()
    ddp = DistributedDataParallel(model)
    grads = torch.zeros(sum(p.numel() for p in model.parameters()))
    rows: dict[str, list[float]] = {"DDP process, 64 rows, global noise": [], "DDP process, 64 rows, own noise": [],
                                    f"all-reduce of {grads.numel() * 4 / 1e6:.1f} MB": []}
    for _ in range(3):
        names = iter(rows)
        rows[next(names)].append(_steps(ddp, opt, x, gen, 64, 128, True))
        rows[next(names)].append(_steps(ddp, opt, x, gen, 64, 128, False))
        c0 = time.process_time()
        for _ in range(40):
            dist.all_reduce(grads)
        rows[next(names)].append((time.process_time() - c0) / 40 * 1e3)
    if rank == 0:
        Path(result).write_text(json.dumps({k: statistics.median(v) for k, v in rows.items()}))
    dist.destroy_process_group()


def anatomy() -> list[str]:
    model, opt, x, gen = _setup()
    single = {"1 process, 128 rows": [], "1 process, 64 rows": []}
    for _ in range(3):
        single["1 process, 128 rows"].append(_steps(model, opt, x, gen, 128, 128, False))
        single["1 process, 64 rows"].append(_steps(model, opt, x, gen, 64, 64, False))
    ms = {k: statistics.median(v) for k, v in single.items()}
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_anatomy_worker, args=(_free_port(), f"{tmp}/r.json"), nprocs=2)
        ms.update(json.loads(Path(f"{tmp}/r.json").read_text()))
    return [f"  {k:38s} {v:7.2f} CPU ms per step per process" for k, v in ms.items()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2, help="epochs of the long run (>= 2)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "ddp.txt"))
    a = p.parse_args()
    lines = [f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"CUDA available: {torch.cuda.is_available()}; MNIST {N_TRAIN} images/epoch, 784-512-256-20, "
             f"global batch 128; long runs {a.epochs} epochs", ""]
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
            res = one_round(order, a.data_dir, Path(tmp), a.epochs)
            rounds.append(res)
            line = f"round {r + 1}: " + "; ".join(
                f"{v}: {res[v]['samples_per_s']:,.0f}/s wall, {res[v]['samples_per_cpu_s']:,.0f}/CPU-s "
                f"(load {res[v]['load']:.1f})" for v in VARIANTS)
            print(line, flush=True)
            lines.append(line)
    med = {v: {k: statistics.median(rd[v][k] for rd in rounds) for k in rounds[0][v]} for v in VARIANTS}
    lines += ["", "medians; ratios to each one-process variant (x 2thr, x 1thr):",
              f"{'variant':24s} {'samples/s wall':>15s} {'x 2thr':>7s} {'x 1thr':>7s} {'samples/CPU-s':>14s} "
              f"{'x 2thr':>7s} {'x 1thr':>7s} {'load':>5s}"]
    for v in VARIANTS:
        m, b2, b1 = med[v], med[VARIANTS[0]], med[VARIANTS[1]]
        w, c = m["samples_per_s"], m["samples_per_cpu_s"]
        lines.append(f"{v:24s} {w:15,.0f} {w / b2['samples_per_s']:7.2f} {w / b1['samples_per_s']:7.2f} {c:14,.0f} "
                     f"{c / b2['samples_per_cpu_s']:7.2f} {c / b1['samples_per_cpu_s']:7.2f} {m['load']:5.1f}")
    lines += ["", f"anatomy of a step (load {os.getloadavg()[0]:.1f}):", *anatomy(),
              "", "GPU: none was available to this measurement (no CUDA device on this machine), so there are no "
              "GPU figures.", "raw medians: " + json.dumps(med)]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-len(VARIANTS) - 12:]))


if __name__ == "__main__":
    main()
