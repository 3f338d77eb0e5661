"""Server CPU of the Directions tab when a user loads a directions file: the hostile families
of issue 9 (deep nesting, a 5000-digit integer, 10**400, [1e155] * J, a 10 MB name, 20,000
one-point groups) and the largest file the app accepts (8 groups of the whole test set, 16
vectors).

Usage (from the project root; the tab runs under streamlit's AppTest, in this process):

    nice -n 10 .venv/bin/python -m bench.directions_import [--checkpoint checkpoints/mnist-z20.safetensors]
        [--groups 20000] [--reruns 3]

For each file: what the tab does with it (refused with a message of N characters, accepted, or
the exception it raised), the process CPU seconds of the rerun that loads it, and the median
CPU seconds of the next ``--reruns`` reruns (an amount slider moved), i.e. what the file costs
on every later interaction. Run it against another checkout (``PYTHONPATH=OTHER python
bench/directions_import.py``) to compare; files and widget keys are the same for both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

FORMAT = {"format": "vae-latent-explorer-directions", "version": 1, "dataset": "mnist"}


def _page():
    """The Directions view alone, on the checkpoint named by $BENCH_CHECKPOINT."""
    import os

    from explorer import models
    from views import directions
    from views.context import ViewContext, load_model

    path = os.path.abspath(os.environ["BENCH_CHECKPOINT"])
    entry = next(e for e in models.discover(os.path.dirname(path)) if str(e.path) == path)
    ck, _ = load_model(str(entry.path), entry.mtime)
    directions.render(ViewContext(entry=entry, ck=ck, problems=models.check_arrays(ck)))


def files(z_dim: int, n_test: int, n_groups: int) -> dict[str, bytes]:
    """The files to load, by family (built by hand, so the same bytes reach any checkout)."""
    def doc(**fields) -> bytes:
        return json.dumps({**FORMAT, **fields}).encode()

    half = n_test // 2
    largest = {f"g{i}": {"pos": list(range(half)), "neg": list(range(half, 2 * half))} for i in range(8)}
    vectors = {f"v{i}": [float(i + 1)] + [0.5] * (z_dim - 1) for i in range(16)}
    return {
        "deep nesting (100k)": b"[" * 100_000 + b"]" * 100_000,
        "5000-digit integer": doc(vectors={"v": [1] * (z_dim - 1) + ["N"]}).replace(b'"N"', b"9" * 5000),
        "10**400": doc(vectors={"v": [1] * (z_dim - 1) + [10**400]}),
        "[1e155] * J": doc(vectors={"v": [1e155] * z_dim}),
        "[1e200] * J": doc(vectors={"v": [1e200] * z_dim}),
        "10 MB name": doc(groups={"x" * 10_000_000: {"pos": [1], "neg": [2]}}),
        f"{n_groups} one-point groups": doc(groups={f"g{i}": {"pos": [(2 * i) % n_test], "neg": [(2 * i + 1) % n_test]}
                                                     for i in range(n_groups)}),
        "largest accepted (8 x 10k rows, 16 vectors)": doc(groups=largest, vectors=vectors),
    }


def _cpu(at, step) -> float:
    t = time.process_time()
    step(at)
    return time.process_time() - t


def run_one(name: str, data: bytes, model: str, reruns: int) -> dict:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_page, default_timeout=1800).run()
    key = f"dir.{model}.b.import"
    load = _cpu(at, lambda a: a.file_uploader(key=key).upload("f.json", data, "application/json").run())
    if at.exception:
        outcome = f"crash: {at.exception[0].value.splitlines()[0][:80]}"
    elif at.error:
        outcome = f"refused ({len(at.error[0].value)}-character message)"
    else:
        outcome = "accepted" + (f"; then {len(at.warning)} warnings" if at.warning else "")
    slider = next((s for s in at.slider if ".amount." in s.key), None)
    later = []
    for i in range(reruns if slider is not None else 0):
        later.append(_cpu(at, lambda a, v=(-1) ** i * 0.5: a.slider(key=slider.key).set_value(v).run()))
    if at.exception:
        outcome += f"; rerun crash: {at.exception[0].value.splitlines()[0][:60]}"
    return {"file": name, "mb": round(len(data) / 2**20, 2), "outcome": outcome, "load_cpu_s": round(load, 3),
            "rerun_cpu_s": round(statistics.median(later), 3) if later else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="checkpoints/mnist-z20.safetensors")
    p.add_argument("--groups", type=int, default=20000, help="groups in the one-point-groups file")
    p.add_argument("--reruns", type=int, default=3)
    p.add_argument("--only", default="", help="run only the files whose name contains this")
    args = p.parse_args(argv)
    from trainer.checkpoint import load_checkpoint

    os.environ["BENCH_CHECKPOINT"] = args.checkpoint
    n_test, z_dim = load_checkpoint(args.checkpoint).arrays["test_mu"].shape
    model = os.path.basename(args.checkpoint).rsplit(".", 1)[0]
    # imports (scikit-learn, once per server process), the model, a first fit
    run_one("warm-up", json.dumps({**FORMAT, "groups": {"w": {"pos": [0, 1], "neg": [2, 3]}}}).encode(), model, 1)
    print(f"{'file':46s} {'MB':>6s} {'load CPU s':>10s} {'rerun CPU s':>11s}  outcome")
    for name, data in files(z_dim, n_test, args.groups).items():
        if args.only in name:
            r = run_one(name, data, model, args.reruns)
            rerun = "-" if r["rerun_cpu_s"] is None else f"{r['rerun_cpu_s']:.3f}"
            print(f"{name:46s} {r['mb']:6.2f} {r['load_cpu_s']:10.3f} {rerun:>11s}  {r['outcome']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
