"""The Compare table (explorer.compare) for shipped MNIST checkpoints, side by side, with the
lecture notes' claims judged on it (explorer.claims); stored for the app's Compare tab.

    python -m bench.compare_autoencoders --data-dir ../shared/data
        [--only mnist-z2 mnist-ae-z2 ...] [--out bench/results/compare_autoencoders.md]
        [--store checkpoints/compare.json]

For each checkpoint: class separation and Gaussianity of the stored test-set codes
(``arrays.test_mu``; for a VAE also one draw z ~ q(z|x) per image), generation scored by the shipped
digit classifier (trainer.digit_classifier), reconstruction and robustness on the 10000 MNIST
test images (grey levels in [0, 1]). One table per latent size (the 2-D and the 20-D VAE, AE and
DAE by default), each with a reference column saying what the figures look like for the ideal: a
true N(0, I) sample of the same size (Gaussianity) and the real test images (classifier scores).
Below each table, one sentence per claim. Also prints the process CPU seconds each model's
figures took. ``--store`` (default: ``compare.json`` in the checkpoint folder) keeps the figures,
keyed by each file's checksum, for the app (explorer/compare_store.py): rerun after retraining.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from explorer import compare_store
from explorer.claims import Model, judge
from explorer.compare import gaussianity, score_images, table_rows
from trainer.checkpoint import list_checkpoints, load_checkpoint
from trainer.data import load_dataset
from trainer.digit_classifier import load_classifier
from trainer.model import KINDS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["mnist-z2", "mnist-ae-z2", "mnist-dae-z2", "mnist-z20", "mnist-ae-z20", "mnist-dae-z20"]
SEED = 0


def reference(n: int, z_dim: int, test_images, classifier) -> dict:
    """The ideal's figures: an N(0, I) sample of n codes, and the real test images' classifier scores."""
    return {"gaussianity": gaussianity(np.random.default_rng(SEED).standard_normal((n, z_dim)), seed=SEED),
            "generation": score_images(test_images[:1000], classifier)}


def markdown_table(columns: dict[str, dict], ideal: dict) -> list[str]:
    """Rows: every figure of :func:`table_rows`; columns: the models, then the ideal."""
    cols = {name: {(s, f): v for s, f, v in table_rows(res)} for name, res in columns.items()}
    ref = {f: v for _, f, v in table_rows(ideal)}
    keys = list(dict.fromkeys(k for col in cols.values() for k in col))
    head = ["section", "figure", *cols, "ideal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sec, label in keys:
        cells = [cols[c].get((sec, label), "") for c in cols] + ["" if "q(z|x)" in sec else ref.get(label, "")]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in (sec, label, *cells)) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    ap.add_argument("--only", nargs="*", default=DEFAULT)
    ap.add_argument("--out", default=None, help="also write the markdown tables to this file")
    ap.add_argument("--store", default=None, help="the app's compare file (default: compare.json in --checkpoints)")
    args = ap.parse_args()
    ds = load_dataset("mnist", args.data_dir)
    images = ds.test_x.reshape(len(ds.test_x), -1).float() / 255.0
    clf = load_classifier()
    entries = {}
    for path in list_checkpoints(args.checkpoints):
        if args.only and path.stem not in args.only:
            continue
        entries[path.stem] = compare_store.measure(load_checkpoint(path), images, clf, seed=SEED)
    # columns in the app's order: VAE, AE, DAE
    entries = dict(sorted(entries.items(), key=lambda kv: (KINDS.index(kv[1]["kind"]), kv[0])))
    if not entries:
        sys.exit(f"no checkpoint of {args.only} in {args.checkpoints}")
    ideal = {j: reference(len(images), j, images, clf) for j in sorted({e["z_dim"] for e in entries.values()})}
    lines = []
    for j, ref in ideal.items():
        group = {n: e for n, e in entries.items() if e["z_dim"] == j}
        lines += [f"### {j}-D latent", "", *markdown_table({n: e["result"] for n, e in group.items()}, ref), ""]
        for v in judge([Model(n, e["kind"], e["result"]) for n, e in group.items()]):
            lines.append(f"- *{v.claim}* {v.sentence}")
        lines.append("")
    lines += ["Ideal column: the Gaussianity figures of a true N(0, I) sample of the same size, and the "
              "classifier's scores on 1000 real test digits.",
              f"Classifier: {clf.meta['test_accuracy']:.4f} MNIST test accuracy. Process CPU seconds per model: "
              + ", ".join(f"{k} {e['cpu_s']:.1f}" for k, e in entries.items()) + "."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    store = Path(args.store) if args.store else compare_store.store_path(args.checkpoints)
    try:  # models measured before and not now are kept (their checksums say whether they still apply)
        old = compare_store.read(store)
        entries, ideal = {**old.models, **entries}, {**old.ideal, **ideal}
    except compare_store.CompareFileError:
        pass
    classifier = {"test_accuracy": float(clf.meta["test_accuracy"]), "file": "checkpoints/judges/"}
    compare_store.write(store, compare_store.Stored(models=entries, ideal=ideal, classifier=classifier, seed=SEED))
    print(f"wrote {store}", file=sys.stderr)


if __name__ == "__main__":
    main()
