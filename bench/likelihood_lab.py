"""How good is each estimator of log p(x)? Naive Monte Carlo vs importance sampling vs the ELBO.

    python -m bench.likelihood_lab --data-dir ../shared/data                 # every part
    python -m bench.likelihood_lab --data-dir ../shared/data --part timing
    python -m bench.likelihood_lab --data-dir ../shared/data --part accuracy
    python -m bench.likelihood_lab --data-dir ../shared/data --part table

``accuracy``: on 100 test images (every 100th, the trainer's fixed binarisation) of mnist-z2, the
exact log p(x) by quadrature (2000 x 2000 grid over ±7 SD; the 1000 x 1000 grid and the tab's
adaptive grid are checked against it), then the mean absolute error to it of importance sampling with q(z|x)
(k = 1000, 5000; :func:`trainer.model.iwae_log_likelihood`), naive Monte Carlo from the prior
(L = 10^3 .. 10^6) and the ELBO (eq. 2). For mnist-z20 the same without quadrature, IS with
k = 10^5 as the reference. Writes bench/results/likelihood_lab.{json,md}.

``timing``: CPU and wall seconds of the tab's interactive run on one image (L = 10^5 prior and
k = 10^4 q samples, plus quadrature for 2-D) for mnist-z2, mnist-z20 and frey-z2, one torch thread
as in the app; medians of 5 images. Writes bench/results/likelihood_timing.json.

``table``: for every checkpoint in checkpoints/, the means over a fixed subset of the test set
(MNIST: every 10th image; Frey Face: all 197 frames) of the ELBO (eq. 2, 100 samples of q per
image), IS with k = 1000, naive MC with L = 10^5 and, for 2-D latents, quadrature. Writes
bench/results/likelihood_table.json, which the app's Likelihood tab shows (it never computes it).
Rerun it whenever the shipped checkpoints are rebuilt (the tab flags rows for other weights).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from explorer.likelihood_lab import INTERACTIVE, TABLE_FILE, TABLE_FORMAT, run_lab, weights_fingerprint
from trainer import likelihood as lk
from trainer.checkpoint import list_checkpoints, load_checkpoint
from trainer.data import load_dataset
from trainer.evaluate import eval_inputs, iwae_log_likelihood_batched, matmul_precision
from trainer.model import kl_divergence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
NAIVE_L = (1_000, 10_000, 100_000, 1_000_000)


def test_set(ck, data_dir: str) -> torch.Tensor:
    """The test split as the trainer reports on it: (N, D), binarised once if the model was."""
    return eval_inputs(load_dataset(ck.meta["dataset"], data_dir).test_x, bool(ck.meta.get("binarized", False)))[0]


def elbo_eq2(model, x: torch.Tensor, k: int = 100, seed: int = 3, batch: int = 100) -> torch.Tensor:
    """Eq. (2) per image with k samples of q(z|x): (N,)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch]
        d = lk.posterior_draws(model, xb, k, chunk=k, generator=g)
        mu, logvar = model.encode(xb)
        out.append(d.log_px_z.mean(0) - kl_divergence(mu, logvar).sum(-1))
    return torch.cat(out)


def mean_ess(model, x: torch.Tensor, n: int, prior: bool, seed: int = 5) -> float:
    """Median over images of the effective sample size of n weights (prior or q proposal)."""
    g = torch.Generator().manual_seed(seed)
    ess = []
    for i in range(0, x.shape[0], 10):
        xb = x[i : i + 10]
        d = lk.prior_draws(model, xb, n, generator=g) if prior else lk.posterior_draws(model, xb, n, 1000, g)
        ess.append(lk.effective_sample_size(d.log_w.double()))
    return float(torch.cat(ess).median())


def _timed(label: str, f):
    t0, c0 = time.perf_counter(), time.process_time()
    v = f()
    print(f"  {label}: {time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU", flush=True)
    return v


def accuracy(name: str, data_dir: str, repeats: int, n_images: int = 100) -> dict:
    ck = load_checkpoint(ROOT / "checkpoints" / f"{name}.safetensors")
    m = ck.model
    x_all = test_set(ck, data_dir)
    idx = torch.arange(0, x_all.shape[0], x_all.shape[0] // n_images)[:n_images]
    x = x_all[idx]
    print(f"{name}: {len(idx)} test images", flush=True)
    out: dict = {"model": name, "images": idx.tolist(), "repeats": repeats}
    if m.config.z_dim == 2:
        coarse = _timed("quadrature 1000^2", lambda: lk.quadrature_log_px(m, x, n=1000)).double()
        ref = _timed("quadrature 2000^2", lambda: lk.quadrature_log_px(m, x, n=2000)).double()
        adapt = _timed("adaptive quadrature", lambda: torch.tensor([lk.adaptive_quadrature(m, x[i : i + 1]).log_px
                                                                    for i in range(len(x))], dtype=torch.float64))
        out["reference"] = "quadrature 2000x2000 over ±7 SD"
        out["quadrature_check"] = {
            f"{name} vs 2000x2000, {stat}": float(f((other - ref).abs()))
            for name, other in (("1000x1000", coarse), ("adaptive (the tab's)", adapt))
            for stat, f in (("median", torch.median), ("max", torch.max))}
        is_ks = (1000, 5000)
    else:
        ref = _timed("IS k=10^5", lambda: iwae_log_likelihood_batched(m, x, 100_000, seed=99, batch=10)).double()
        out["reference"] = "importance sampling, k = 100000"
        is_ks = (1000, 5000)
    out["reference_mean"] = float(ref.mean())
    out["reference_values"] = ref.tolist()
    est: dict[str, list[torch.Tensor]] = {}
    for r in range(repeats):
        for k in is_ks:
            est.setdefault(f"IS k={k}", []).append(
                _timed(f"IS k={k} (run {r})", lambda k=k, r=r: iwae_log_likelihood_batched(m, x, k, seed=10 + r)))
        g = torch.Generator().manual_seed(1000 + r)
        nv = _timed(f"naive L=10^3..10^6 (run {r})", lambda g=g: lk.naive_mc_log_px(m, x, NAIVE_L, generator=g))
        for L, v in zip(NAIVE_L, nv):
            est.setdefault(f"naive L={L}", []).append(v)
    est["ELBO eq. 2"] = [_timed("ELBO eq. 2 (1000 samples)", lambda: elbo_eq2(m, x, k=1000))]
    rows = {}
    for key, vals in est.items():
        errs = torch.stack([v.double() - ref for v in vals])  # (repeats, N)
        rows[key] = {"mean_abs_error": float(errs.abs().mean()), "median_abs_error": float(errs.abs().median()),
                     "mean_error": float(errs.mean()), "max_abs_error": float(errs.abs().max()), "runs": len(vals),
                     "errors_first_run": errs[0].tolist()}
    out["errors"] = rows
    out["median_ess"] = {"prior, L=10^5": _timed("ESS prior", lambda: mean_ess(m, x, 100_000, True)),
                         "q, k=5000": _timed("ESS q", lambda: mean_ess(m, x, 5000, False))}
    return out


def timing(names: list[str], data_dir: str, n_images: int = 5) -> dict:
    """Seconds for the tab's interactive run on one image (L = 10^5, k = 10^4, and quadrature for
    2-D), as the app runs it (one torch thread): medians over ``n_images`` test images."""
    out = {}
    for name in names:
        ck = load_checkpoint(ROOT / "checkpoints" / f"{name}.safetensors")
        x = test_set(ck, data_dir)
        cpu, wall = [], []
        for i in range(n_images):
            c0, t0 = time.process_time(), time.perf_counter()
            run_lab(ck.model, x[i * 997 % x.shape[0]].numpy(), INTERACTIVE)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - t0)
        out[name] = {"cpu_s_median": statistics.median(cpu), "wall_s_median": statistics.median(wall),
                     "cpu_s": cpu, "wall_s": wall, "load_avg_1min": os.getloadavg()[0]}
        print(f"{name}: one image, L={INTERACTIVE.L:,}, k={INTERACTIVE.k:,}: median {out[name]['cpu_s_median']:.2f} s "
              f"CPU, {out[name]['wall_s_median']:.2f} s wall (load average {out[name]['load_avg_1min']:.1f})",
              flush=True)
    return out


def table_row(path: Path, data_dir: str) -> dict:
    ck = load_checkpoint(path)
    m = ck.model
    x_all = test_set(ck, data_dir)
    every = 10 if x_all.shape[0] > 1000 else 1
    x = x_all[::every]
    subset = f"every {every}th test image" if every > 1 else "every test image"
    print(f"{path.stem}: {x.shape[0]} images ({subset})", flush=True)
    g = torch.Generator().manual_seed(7)
    row = {
        "model": path.stem, "dataset": ck.meta.get("dataset", ""), "likelihood": ck.config.likelihood,
        "binarized": bool(ck.meta.get("binarized", False)), "z_dim": m.config.z_dim, "n": int(x.shape[0]),
        "subset": subset,
        "elbo": float(_timed("ELBO", lambda: elbo_eq2(m, x)).mean()),
        "is_k1000": float(_timed("IS k=1000", lambda: iwae_log_likelihood_batched(m, x, 1000, seed=8)).mean()),
        "naive_L1e5": float(_timed("naive L=10^5", lambda: lk.naive_mc_log_px(m, x, 100_000, generator=g)).mean()),
        "exact": (float(_timed("quadrature", lambda: lk.quadrature_log_px(m, x)).mean())
                  if m.config.z_dim == 2 else None),
        "fingerprint": weights_fingerprint(m),
    }
    print("  " + json.dumps({k: row[k] for k in ("elbo", "is_k1000", "naive_L1e5", "exact")}), flush=True)
    return row


def _markdown(results: list[dict]) -> str:
    lines = []
    for r in results:
        lines += [f"### {r['model']}: error to {r['reference']} (mean {r['reference_mean']:.2f} nats), "
                  f"{len(r['images'])} test images", "",
                  "| estimator | mean abs. error | median abs. error | mean error | max abs. error |",
                  "|---|---|---|---|---|"]
        lines += [f"| {k} | {v['mean_abs_error']:.3f} | {v['median_abs_error']:.3f} | {v['mean_error']:+.3f} | "
                  f"{v['max_abs_error']:.3f} |" for k, v in r["errors"].items()]
        ess = ", ".join(f"{k}: {v:,.1f}" for k, v in r["median_ess"].items())
        lines += ["", f"median effective sample size: {ess}"]
        if "quadrature_check" in r:
            lines.append("quadrature check (abs. difference, nats): " + ", ".join(
                f"{k}: {v:.2g}" for k, v in r["quadrature_check"].items()))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--part", choices=("accuracy", "table", "timing", "all"), default="all")
    ap.add_argument("--repeats", type=int, default=3, help="independent runs of each sampling estimator")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (one is steadier on a busy 2-core machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d")
    with torch.no_grad(), matmul_precision("highest"):
        if args.part in ("timing", "all"):
            t = timing(["mnist-z2", "mnist-z20", "frey-z2"], args.data_dir)
            (out / "likelihood_timing.json").write_text(json.dumps({"created": stamp, "threads": 1, "results": t},
                                                                   indent=1))
        if args.part in ("accuracy", "all"):
            res = [accuracy(n, args.data_dir, args.repeats) for n in ("mnist-z2", "mnist-z20")]
            (out / "likelihood_lab.json").write_text(json.dumps({"created": stamp, "results": res}, indent=1))
            md = _markdown(res)
            (out / "likelihood_lab.md").write_text(f"# Likelihood estimators ({stamp}; `python -m bench.likelihood_lab"
                                                   f" --part accuracy`)\n\n{md}")
            print(md)
        if args.part in ("table", "all"):
            rows = [table_row(p, args.data_dir) for p in list_checkpoints(ROOT / "checkpoints")]
            table = {"format": TABLE_FORMAT, "version": 1, "created": stamp,
                     "subset": "a fixed subset of the test set (MNIST: every 10th image, the trainer's binarisation; "
                               "Frey Face: all 197 frames)", "rows": rows}
            dest = out / TABLE_FILE.name
            dest.write_text(json.dumps(table, indent=1) + "\n")
            print(f"wrote {dest}")
    print(f"torch threads: {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
