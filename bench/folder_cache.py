"""Image folders larger than memory: build the on-disk cache, then train from its memory map.

    python -m bench.folder_cache [--n 200000] [--rounds 2] [--steps 0] [--skip-loader]

Generates a synthetic folder of ``--n`` 28x28 grey PNGs (random strokes, about MNIST's PNG size; ten
class sub-folders and ``--corrupt`` unreadable files) in a temporary folder that is deleted afterwards,
then measures, each phase in a fresh subprocess so its CPU time and peak RSS are its own:

- build: ``open_folder_dataset`` decoding the folder into the cache (process pool, all CPUs); wall
  and CPU seconds (the builder plus its worker processes), peak RSS of the builder and of a worker;
- reopen: the same call with the cache in place (list + stat + key + map, no decoding);
- loader: ``trainer.image_folder.load_image_folder``, today's in-memory path, decoding in one process;
- train: a plain Adam loop (trainer.model's 784-400-20 VAE, batch 128, dynamic binarisation,
  ``loss_function``) for ``--steps`` steps (0: one epoch) in three modes: ``pread`` (BatchInput over
  the cache, each batch read with positioned reads: the default), ``map`` (the same, each batch
  fancy-indexed from the np.memmap) and ``memory`` (the trainer's current path: the whole training
  set as float32 in memory). Samples/s (wall and per CPU second), the gather's time, RSS before the
  data, after setup and peak (VmHWM), and the file-backed part (mapped page cache).

Rounds alternate the training modes; medians are reported. Results go to bench/results/folder_cache.txt.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT_ROOT / "bench" / "results" / "folder_cache.txt"
MODES = ("pread", "map", "memory")


# --------------------------------------------------------------------------- helpers


def proc_status() -> dict[str, float]:
    """VmRSS, VmHWM (peak), RssAnon, RssFile of this process in MB, from /proc/self/status."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(rest.split()[0]) / 1024
    return out


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


def _write_chunk(args: tuple[str, int, int, int]) -> int:
    """PNGs [start, stop): 2-4 random strokes of width 2-3 on black (like MNIST, ~250 bytes each)."""
    from PIL import Image, ImageDraw

    root, start, stop, seed = args
    rng = np.random.default_rng([seed, start])
    total = 0
    for i in range(start, stop):
        img = Image.new("L", (28, 28), 0)
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(2, 5))):
            draw.line([tuple(rng.integers(4, 24, 2).tolist()) for _ in range(3)], fill=255,
                      width=int(rng.integers(2, 4)))
        path = Path(root) / f"c{i % 10}" / f"{i:07d}.png"
        img.save(path)
        total += path.stat().st_size
    return total


def generate(root: Path, n: int, corrupt: int, seed: int = 0) -> tuple[float, int]:
    """The synthetic folder; returns (seconds, bytes of image files)."""
    t0 = time.perf_counter()
    for c in range(10):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    step = 2000
    with ProcessPoolExecutor(len(os.sched_getaffinity(0))) as ex:
        total = sum(ex.map(_write_chunk, [(str(root), s, min(s + step, n), seed) for s in range(0, n, step)]))
    for i in range(corrupt):  # truncated PNGs: skipped and listed, never fatal
        good = (root / f"c{i % 10}" / f"{i:07d}.png").read_bytes()
        (root / f"c{i % 10}" / f"broken{i}.png").write_bytes(good[: len(good) // 2])
    return time.perf_counter() - t0, total


def run_phase(args: argparse.Namespace, phase: str, mode: str = "") -> dict:
    """This file's ``--phase`` in a fresh interpreter; its last stdout line is the JSON result."""
    cmd = [sys.executable, "-m", "bench.folder_cache", "--phase", phase, "--folder", str(args.folder),
           "--cache", str(args.cache), "--steps", str(args.steps), "--threads", str(args.threads), "--mode", mode]
    out = subprocess.run(cmd, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# --------------------------------------------------------------------------- phases (in a subprocess)


def phase_open(args: argparse.Namespace) -> dict:
    import warnings

    from trainer.folder_cache import open_folder_dataset

    t0, c0 = time.perf_counter(), cpu_seconds()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = open_folder_dataset(args.folder, (28, 28), cache_dir=args.cache, progress=args.phase == "build")
    wall = time.perf_counter() - t0
    images = ds.train_x.images
    return {"wall_s": wall, "cpu_self_s": cpu_seconds() - c0, "cpu_children_s": cpu_seconds(resource.RUSAGE_CHILDREN),
            "built": ds.built, "n_images": ds.provenance["n_images"], "cache_bytes": int(images.nbytes),
            "peak_rss_mb": proc_status()["VmHWM"],
            "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "warning": " ".join(str(r.message) for r in rec)[:300],
            "workers": len(os.sched_getaffinity(0))}


def phase_loader(args: argparse.Namespace) -> dict:
    import warnings

    from trainer.image_folder import load_image_folder

    t0, c0 = time.perf_counter(), cpu_seconds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_image_folder(args.folder, (28, 28))
    return {"wall_s": time.perf_counter() - t0, "cpu_s": cpu_seconds() - c0, "n_images": ds.provenance["n_images"],
            "peak_rss_mb": proc_status()["VmHWM"]}


def phase_train(args: argparse.Namespace) -> dict:
    import warnings

    import torch

    from trainer.folder_cache import open_folder_dataset
    from trainer.memmap_images import BatchInput, MemmapImages, model_input
    from trainer.model import VAE, VAEConfig, loss_function
    from trainer.train import binarize_batch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = VAE(VAEConfig(image_shape=(28, 28), hidden=(400,), z_dim=20))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)

    def step(xb: torch.Tensor) -> torch.Tensor:
        xb = binarize_batch(xb, gen)
        loss = loss_function(xb, model(xb, 1, gen))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):  # warm-up on noise: autograd buffers and Adam state exist before the baseline RSS
        step(torch.rand(128, 784, generator=gen))
    base = proc_status()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = open_folder_dataset(args.folder, (28, 28), cache_dir=args.cache, progress=False)
    if args.mode == "memory":
        train_u8 = ds.train_x.load()  # what load_image_folder hands the trainer today
        x = model_input(train_u8)  # ... and the trainer's to_model_input of all of it
    else:
        x = BatchInput(MemmapImages(ds.train_x.images, ds.train_x.rows, reader=args.mode))
    n, batch = x.shape[0], 128
    steps = args.steps or math.ceil(n / batch)
    perm = torch.randperm(n, generator=gen)
    setup = proc_status()
    gather_s = 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(steps):
        b = s % math.ceil(n / batch)
        tg = time.perf_counter()
        xb = x[perm[b * batch : (b + 1) * batch]]
        gather_s += time.perf_counter() - tg
        loss = step(xb)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    end = proc_status()
    return {"mode": args.mode, "steps": steps, "samples_per_s": steps * batch / wall,
            "cpu_ms_per_step": 1e3 * cpu / steps, "gather_ms_per_batch": 1e3 * gather_s / steps,
            "rss_before_data_mb": base["VmRSS"], "rss_file_before_data_mb": base["RssFile"],
            "rss_setup_mb": setup["VmRSS"],
            "peak_rss_mb": end["VmHWM"], "rss_file_end_mb": end["RssFile"], "rss_anon_end_mb": end["RssAnon"],
            "threads": torch.get_num_threads(), "torch": torch.__version__, "final_loss": loss.item()}


# --------------------------------------------------------------------------- the report


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def _grow(r: dict, key: str) -> float:
    return r[key] - r["rss_before_data_mb"]


def _file_grow(r: dict) -> float:
    return r["rss_file_end_mb"] - r["rss_file_before_data_mb"]


def report(args, gen_s, gen_bytes, build, reopen, loader, train, load_before, load_after) -> str:
    mb = build["cache_bytes"] / 2**20
    cpu_build = build["cpu_self_s"] + build["cpu_children_s"]
    lines = [
        f"# python -m bench.folder_cache --n {args.n} --rounds {args.rounds} --steps {args.steps} "
        f"--threads {args.threads}"
        + (" --skip-loader" if args.skip_loader else ""),
        f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} CPUs, torch {train[0]['torch']} ({train[0]['threads']} threads); "
        f"machine shared with other jobs: load average {load_before:.1f} at start, {load_after:.1f} at end "
        "(wall times are noisy; CPU seconds are the steadier figure)",
        "",
        f"folder: {build['n_images']:,} readable 28x28 PNGs + {args.corrupt} truncated ones in 10 class folders, "
        f"{gen_bytes / 2**20:.1f} MiB of files, generated in {gen_s:.1f} s",
        f"cache:  images.npy {mb:.1f} MiB (N x 28 x 28 uint8) + labels.npy {build['n_images'] * 8 / 2**20:.1f} MiB",
        "",
        "## build, reopen, and today's in-memory loader (one run each)",
        f"build (open_folder_dataset, {build['workers']} worker processes): {build['wall_s']:.1f} s wall, "
        f"{cpu_build:.1f} CPU s ({1e6 * cpu_build / build['n_images']:.0f} us CPU per image); builder peak RSS "
        f"{build['peak_rss_mb']:.0f} MiB, largest worker {build['worker_peak_rss_mb']:.0f} MiB",
        f"  warning: {build['warning']}",
        f"reopen (cache in place, no decoding: list + stat + key + map): {reopen['wall_s']:.2f} s wall, "
        f"{reopen['cpu_self_s']:.2f} CPU s, built={reopen['built']}",
    ]
    if loader:
        lines.append(f"load_image_folder (every run today, one process): {loader['wall_s']:.1f} s wall, "
                     f"{loader['cpu_s']:.1f} CPU s, peak RSS {loader['peak_rss_mb']:.0f} MiB")
    lines += ["", f"## training, 784-400-20 VAE, batch 128, Adam, dynamic binarisation, {train[0]['steps']} steps "
              f"(one pass over {train[0]['steps'] * 128:,} samples) per run, {args.rounds} round(s) alternating modes",
              "RSS figures are growth over the process before it touched the data (torch, model and Adam after 3 "
              f"warm-up steps: {_median(train, 'rss_before_data_mb'):.0f} MiB); 'file' is the mapped page cache part"]
    for r in train:
        lines.append(f"{r['mode']:<7} {r['samples_per_s']:7,.0f} samples/s  CPU {r['cpu_ms_per_step']:.2f} ms/step  "
                     f"gather {r['gather_ms_per_batch']:.3f} ms/batch  RSS +{_grow(r, 'rss_setup_mb'):.0f} MiB after "
                     f"setup, peak +{_grow(r, 'peak_rss_mb'):.0f} MiB, file +{_file_grow(r):.0f} MiB at end")
    lines += ["", "medians  samples/s (wall)  samples per CPU s  x memory (CPU)  gather ms/batch  peak RSS growth MiB  "
              "of which file-backed"]
    med = {m: [r for r in train if r["mode"] == m] for m in MODES}
    ref = statistics.median(128e3 / r["cpu_ms_per_step"] for r in med["memory"])
    for m, rows in med.items():
        per_cpu = statistics.median(128e3 / r["cpu_ms_per_step"] for r in rows)
        lines.append(f"{m:<7}  {_median(rows, 'samples_per_s'):17,.0f}  {per_cpu:17,.0f}  {per_cpu / ref:14.2f}  "
                     f"{_median(rows, 'gather_ms_per_batch'):15.3f}  "
                     f"{statistics.median(_grow(r, 'peak_rss_mb') for r in rows):19.0f}  "
                     f"{statistics.median(_file_grow(r) for r in rows):20.0f}")
    lines.append(f"(cache {mb:.0f} MiB; the training split is {train[0]['steps'] * 128 * 784 / 2**20:.0f} MiB as "
                 f"uint8 and {train[0]['steps'] * 128 * 784 * 4 / 2**20:.0f} MiB as float32)")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200_000, help="images in the synthetic folder")
    p.add_argument("--corrupt", type=int, default=5, help="unreadable files added to the folder")
    p.add_argument("--rounds", type=int, default=2, help="rounds of the three training modes")
    p.add_argument("--steps", type=int, default=0, help="training steps per run; 0 = one epoch")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads while training (1: on a shared, oversubscribed machine 2 threads spin-wait)")
    p.add_argument("--skip-loader", action="store_true", help="skip timing load_image_folder (slow at 200k)")
    p.add_argument("--tmp", default=None, help="where the temporary folder goes (default: the system's)")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--phase", choices=("build", "reopen", "loader", "train"), help=argparse.SUPPRESS)
    p.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--mode", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase:
        fn = {"build": phase_open, "reopen": phase_open, "loader": phase_loader, "train": phase_train}[args.phase]
        print(json.dumps(fn(args)))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill (or `timeout`) still deletes the folder
    work = Path(tempfile.mkdtemp(prefix="vae-foldercache-bench-", dir=args.tmp))
    args.folder, args.cache = work / "images", work / "cache"
    try:
        load_before = os.getloadavg()[0]
        gen_s, gen_bytes = generate(args.folder, args.n, args.corrupt)
        print(f"generated {args.n} images in {gen_s:.1f} s", file=sys.stderr)
        build = run_phase(args, "build")
        reopen = run_phase(args, "reopen")
        loader = None if args.skip_loader else run_phase(args, "loader")
        train = [run_phase(args, "train", m) for _ in range(args.rounds) for m in MODES]
        text = report(args, gen_s, gen_bytes, build, reopen, loader, train, load_before, os.getloadavg()[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
