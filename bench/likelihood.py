"""Test-set likelihoods of the shipped checkpoints, recomputed from scratch.

    python -m bench.likelihood --data-dir ../shared/data [--k 1000] [--only mnist-z20]

For each checkpoint: the test ELBO and the importance-weighted log p(x) (Burda et al. 2015) with k
samples on the whole test split (MNIST: the trainer's fixed binarisation of the official 10000 test
images; Frey Face: the 197 held-out frames, a continuous density), next to the value the trainer
stored at training time. Reference: Burda et al. report -86.76 nats for a one-layer VAE on MNIST
(k = 5000, 3280 epochs); the pytorch/examples recipe after 10 epochs is about -96 (recipes.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trainer.checkpoint import list_checkpoints, read_metadata
from trainer.evaluate import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--checkpoints", default=str(Path(__file__).resolve().parents[1] / "checkpoints"))
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args()
    rows = []
    print(f"{'checkpoint':<12} {'n':>6} {'k':>5} {'test ELBO':>10} {'log p(x)':>10} {'stored':>10} {'epochs':>7} "
          f"{'train s':>8}")
    for path in list_checkpoints(args.checkpoints):
        if args.only and path.stem not in args.only:
            continue
        config, meta = read_metadata(path)
        if not config.has_prior:  # an autoencoder has no ELBO or log p(x) (its numbers: the Compare table)
            continue
        r = evaluate(path, k=args.k, data_dir=args.data_dir)
        r["stored_iwae_ll"] = meta.get("metrics", {}).get("test_iwae_ll")
        r["epochs"] = len(meta.get("history", []))
        r["train_seconds"] = meta.get("wall_time_s")
        rows.append(r)
        print(f"{path.stem:<12} {r['n_test']:>6} {r['k']:>5} {r['test_elbo']:>10.2f} {r['test_iwae_ll']:>10.2f} "
              f"{r['stored_iwae_ll'] or float('nan'):>10.2f} {r['epochs']:>7} {r['train_seconds'] or 0:>8.0f}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
