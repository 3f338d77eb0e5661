"""The Compare table (explorer.compare) for shipped MNIST checkpoints, side by side.

    python -m bench.compare_autoencoders --data-dir ../shared/data [--only mnist-z2 mnist-z20] [--out FILE.md]

For each checkpoint: class separation and Gaussianity of the stored test-set codes
(``arrays.test_mu``; for a VAE also one draw z ~ q(z|x) per image), generation scored by the shipped
digit classifier (trainer.digit_classifier), reconstruction and robustness on the 10000 MNIST
test images (grey levels in [0, 1]). Two reference columns say what the figures look like for
the ideal: a true N(0, I) sample of the same size (Gaussianity) and the real test images
(classifier scores). Also prints the process CPU seconds each model's table took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from explorer.compare import compare_model, gaussianity, model_functions, score_images, table_rows
from trainer.checkpoint import list_checkpoints, load_checkpoint
from trainer.data import load_dataset
from trainer.digit_classifier import load_classifier


def reference_rows(n: int, z_dim: int, test_images, classifier) -> dict[str, str]:
    """Figure -> value for the ideal: an N(0, I) sample of n codes, and the real test images."""
    ref = {"gaussianity": gaussianity(np.random.default_rng(0).standard_normal((n, z_dim)))}
    ref["generation"] = score_images(test_images[:1000], classifier)
    return {label: value for _, label, value in table_rows(ref)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--checkpoints", default=str(Path(__file__).resolve().parents[1] / "checkpoints"))
    ap.add_argument("--only", nargs="*", default=["mnist-z2", "mnist-z20"])
    ap.add_argument("--out", default=None, help="also write the markdown table to this file")
    args = ap.parse_args()
    ds = load_dataset("mnist", args.data_dir)
    images = ds.test_x.reshape(len(ds.test_x), -1).float() / 255.0
    clf = load_classifier()
    columns, cpu, z_dims = {}, {}, {}
    for path in list_checkpoints(args.checkpoints):
        if args.only and path.stem not in args.only:
            continue
        ck = load_checkpoint(path)
        encode, decode = model_functions(ck.model)
        t0 = time.process_time()
        res = compare_model(ck.arrays["test_mu"], ck.arrays["test_labels"], encode=encode, decode=decode,
                            images=images, classifier=clf, logvar=ck.arrays.get("test_logvar"))
        cpu[path.stem] = time.process_time() - t0
        columns[path.stem] = {(sec, label): value for sec, label, value in table_rows(res)}
        z_dims[path.stem] = ck.config.z_dim
    if not columns:
        sys.exit(f"no checkpoint of {args.only} in {args.checkpoints}")
    refs = {j: reference_rows(len(images), j, images, clf) for j in sorted(set(z_dims.values()))}
    keys = list(dict.fromkeys(k for col in columns.values() for k in col))
    head = ["section", "figure", *columns, *(f"ideal, J = {j}" for j in refs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sec, label in keys:
        cells = [columns[c].get((sec, label), "") for c in columns]
        cells += ["" if "q(z|x)" in sec else ref.get(label, "") for ref in refs.values()]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in (sec, label, *cells)) + " |")
    lines += ["", "Ideal columns: the Gaussianity figures of a true N(0, I) sample of the same size, and the "
              "classifier's scores on 1000 real test digits.",
              f"Classifier: {clf.meta['test_accuracy']:.4f} MNIST test accuracy. Process CPU seconds per table: "
              + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()) + "."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
