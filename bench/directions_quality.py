"""Do the built-in latent directions do what they say? Held-out scores and decoded sweeps.

Usage (from the project root):

    nice -n 10 .venv/bin/python -m bench.directions_quality [CKPT ...] [--data-dir DIR]
        [--n-base 100] [--steps 9] [--span 2] [--out bench/results/directions_quality.json]

Default checkpoints: every ``checkpoints/*.safetensors`` of MNIST or Frey Face. For each one
and each attribute direction it carries (MNIST: slant, thickness, width, height; Frey Face:
smile, pose), each method:

1. **Held-out score** as stored by ``python -m trainer directions`` (accuracy / AUC or R^2,
   cross-validated; see ``trainer/directions.py`` and ``trainer/builtin_directions.py``).
2. **Sweep**: ``--n-base`` encoded test images (a seeded random choice) are moved along the
   direction from ``-span`` to ``+span`` test-set SDs in ``--steps`` steps and decoded. The
   decoded images are *measured*: MNIST with ``trainer.attributes`` (slant, thickness, width,
   height), Frey Face with the pixel judge of ``trainer/judges.py`` (smile and pose logits,
   trained on the labelled frames' pixels, not on latents). Reported: the mean over base points
   of the Spearman rank correlation between step and the measured attribute (target >= 0.9
   for MNIST slant and thickness), the fraction of base points with rho >= 0.9, and the mean
   change of the attribute from the first to the last step.
3. **Drift** of every *other* measured attribute over the same sweep: the mean absolute change
   from the first to the last step, in SDs of that attribute over decoded reconstructions of
   the test set, once moving freely and once holding the other attribute directions (same
   method; at most J - 1 of them, most correlated first, see :func:`choose_holds`) with the
   conditional projection (``explorer.directions.apply_directions``).
   ``drift`` is the mean |change| per base point, ``bias`` the |mean change| (the systematic
   part, which is what a linear projection can remove). The target's own change is given in
   the same units (``effect``), for scale.

Prints a table and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from threadpoolctl import threadpool_limits

from explorer.directions import apply_directions, builtin_directions, step_vector
from trainer.attributes import ATTRIBUTES, measure_batch
from trainer.builtin_directions import compute_directions, encode_frey_frames
from trainer.checkpoint import list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

FREY_ATTRS = ("smile", "pose")


class Measurer:
    """Decoded images (n, H, W) in [0, 1] -> {attribute: (n,)} for one dataset."""

    def __init__(self, dataset: str, data_dir):
        self.dataset = dataset
        self.judge = None
        if dataset == "frey":
            from trainer.judges import train_judge

            self.judge = train_judge(data_dir)
        self.names = ATTRIBUTES if dataset == "mnist" else FREY_ATTRS

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if self.judge is not None:
            return self.judge.scores(images)
        m = measure_batch(images)
        return {k: m[k] for k in self.names}


def decode(ck, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        x = ck.model.decode(torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)))
    return x.numpy().reshape(*z.shape[:-1], *ck.image_shape)


def _spearman_rows(amounts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rank correlation of each row of values (B, S) with amounts (S,); NaN rows stay NaN,
    constant rows (the image did not change at all) count as 0."""
    out = np.full(values.shape[0], np.nan)
    for i, v in enumerate(values):
        if np.isfinite(v).all():
            out[i] = 0.0 if np.ptp(v) == 0 else spearmanr(amounts, v).statistic
    return out


def bench_checkpoint(path: Path, data_dir, n_base: int, steps: int, span: float, seed: int) -> dict:
    ck = load_checkpoint(path)
    dataset = ck.meta.get("dataset")
    mu = ck.arrays["test_mu"].numpy().astype(np.float64)
    J = ck.config.z_dim
    source = "stored in the checkpoint"
    dirs = builtin_directions(ck.arrays, ck.meta, J, mu)
    if not dirs:
        arrays, meta = compute_directions(ck, data_dir)
        dirs = builtin_directions({"direction." + k: v for k, v in arrays.items()}, {"directions": meta}, J, mu)
        source = "computed now (not stored in the checkpoint)"
    measure = Measurer(dataset, data_dir)
    attrs = measure.names
    by_key = {(d.name, d.method): d for d in dirs}
    g = np.random.default_rng(seed)
    rows = g.choice(len(mu), size=min(n_base, len(mu)), replace=False)
    base = mu[rows]
    # Scale for drift: SD of each measured attribute over decoded reconstructions of the test set.
    ref_rows = g.choice(len(mu), size=min(2000, len(mu)), replace=False)
    ref = measure(decode(ck, mu[ref_rows]))
    ref_sd = {k: float(np.nanstd(ref[k])) for k in attrs}
    amounts = np.linspace(-span, span, steps)
    result = {"dataset": dataset, "z_dim": J, "directions_source": source, "n_base": int(len(rows)),
              "reference_sd": ref_sd, "directions": {}}
    if measure.judge is not None:
        result["judge_quality"] = measure.judge.quality
        result["judge_on_reconstructions"] = judge_on_reconstructions(ck, measure.judge, data_dir)
    for name in attrs:
        for method in ("mean_difference", "classifier", "regression"):
            d = by_key.get((name, method))
            if d is None:
                continue
            others = [by_key.get((o, method)) or next((v for (n, _), v in by_key.items() if n == o), None)
                      for o in attrs if o != name]
            holds = choose_holds(d, others, J)
            entry = {"heldout": d.quality, "hold": [h.key.split(":", 1)[1] for h in holds]}
            for mode, hold in (("free", []), ("held", holds)):
                z = np.stack([[apply_directions(b, [(d, a)], hold) for a in amounts] for b in base])  # (B, S, J)
                m = measure(decode(ck, z).reshape(-1, *ck.image_shape))
                m = {k: v.reshape(len(base), steps) for k, v in m.items()}
                rho = _spearman_rows(amounts, m[name])
                change = m[name][:, -1] - m[name][:, 0]
                entry[mode] = {
                    "spearman": float(np.nanmean(rho)),
                    "frac_rho_ge_0.9": float(np.nanmean(rho >= 0.9)),
                    "change": float(np.nanmean(change)),
                    "effect_sd": float(np.nanmean(change) / ref_sd[name]) if ref_sd[name] > 0 else None,
                    "drift_sd": {k: float(np.nanmean(np.abs(m[k][:, -1] - m[k][:, 0])) / ref_sd[k])
                                 for k in attrs if k != name and ref_sd[k] > 0},
                    "bias_sd": {k: float(abs(np.nanmean(m[k][:, -1] - m[k][:, 0])) / ref_sd[k])
                                for k in attrs if k != name and ref_sd[k] > 0},
                    "n_valid": int(np.isfinite(rho).sum()),
                }
            result["directions"].setdefault(name, {})[method] = entry
    return result


def choose_holds(d, candidates, z_dim: int) -> list:
    """The other attributes' directions to hold while moving along ``d``: most correlated with
    ``d`` first, at most J - 1 of them, skipping any that would leave almost nothing of ``d``
    to move along (in a 2-D latent, holding one direction fixes the path completely)."""
    holds = []
    for h in sorted((c for c in candidates if c is not None), key=lambda c: -abs(float(c.vector @ d.vector))):
        if len(holds) >= z_dim - 1:
            break
        try:
            step_vector(d, holds + [h])
        except ValueError:
            continue
        holds.append(h)
    return holds


def judge_on_reconstructions(ck, judge, data_dir) -> dict:
    """The judge's accuracy on the model's reconstructions (decoded means) of the labelled
    frames: does a judge trained on real frames still read decoded (blurrier) faces?"""
    from trainer.labels import load_frey_labels

    lab = load_frey_labels(drop_ambiguous=True)
    z = encode_frey_frames(ck, lab["frame"], data_dir)
    pred = judge.predict(decode(ck, z))
    return {k: float((pred[k] == lab[k]).mean()) for k in FREY_ATTRS}


def _f(x, fmt="{:.2f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def print_table(results: dict) -> None:
    for name, r in results.items():
        print(f"\n{name} ({r['dataset']}, J={r['z_dim']}, {r['n_base']} base points; "
              f"directions {r['directions_source']})")
        if "judge_quality" in r:
            jq = r["judge_quality"]
            on_rec = r["judge_on_reconstructions"]
            print(f"  judge (pixels): smile acc {jq['smile']['accuracy']:.3f} "
                  f"(majority {jq['smile']['majority']:.3f}), "
                  f"pose acc {jq['pose']['accuracy']:.3f} (majority {jq['pose']['majority']:.3f}); "
                  f"on reconstructions: smile {on_rec['smile']:.3f}, pose {on_rec['pose']:.3f}")
        print(f"  {'direction':10s} {'method':16s} {'held-out':>22s} | {'rho':>5s} {'>=.9':>5s} {'effect':>6s} "
              f"{'drift':>5s} {'bias':>5s} | {'rho':>5s} {'effect':>6s} {'drift':>5s} {'bias':>5s}"
              "   (free | holding the others)")
        for dname, methods in r["directions"].items():
            for method, e in methods.items():
                q = e["heldout"] or {}
                ho = (f"R2 {_f(q.get('r2'))}" if "r2" in q else f"acc {_f(q.get('accuracy'))} AUC {_f(q.get('auc'))}")
                fr, he = e["free"], e["held"]
                def avg(x, key):
                    return float(np.mean(list(x[key].values()))) if x[key] else None

                print(f"  {dname:10s} {method:16s} {ho:>22s} | {fr['spearman']:5.2f} {fr['frac_rho_ge_0.9']:5.2f} "
                      f"{_f(fr['effect_sd']):>6s} {_f(avg(fr, 'drift_sd')):>5s} {_f(avg(fr, 'bias_sd')):>5s} | "
                      f"{he['spearman']:5.2f} {_f(he['effect_sd']):>6s} {_f(avg(he, 'drift_sd')):>5s} "
                      f"{_f(avg(he, 'bias_sd')):>5s}")
    print("\nrho: mean Spearman of step vs measured attribute; >=.9: fraction of base points with rho >= 0.9;"
          "\neffect: mean change of the target over the sweep; drift / bias: mean |change| / |mean change|"
          "\nof the other measured attributes (averaged over them); all in SDs of each attribute over"
          "\ndecoded test reconstructions.")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="*")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--n-base", type=int, default=100)
    p.add_argument("--steps", type=int, default=9)
    p.add_argument("--span", type=float, default=2.0, help="sweep from -span to +span test-set SDs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "bench/results/directions_quality.json"))
    args = p.parse_args(argv)
    paths = [Path(c) for c in args.checkpoints] or list_checkpoints(ROOT / "checkpoints")
    results = {}
    t0 = time.perf_counter()
    with threadpool_limits(1):
        for path in paths:
            ck_meta = load_checkpoint(path).meta
            if ck_meta.get("dataset") not in ("mnist", "frey"):
                print(f"{path}: skipped (dataset {ck_meta.get('dataset')!r})", file=sys.stderr)
                continue
            t = time.perf_counter()
            results[path.stem] = bench_checkpoint(path, args.data_dir, args.n_base, args.steps, args.span, args.seed)
            print(f"{path}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    print_table(results)
    out = {
        "settings": {"n_base": args.n_base, "steps": args.steps, "span_sd": args.span, "seed": args.seed},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.perf_counter() - t0, 1),
        "checkpoints": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
