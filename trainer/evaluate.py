"""Honest evaluation of a checkpoint on its dataset's test split.

``evaluate(path, k=1000) -> dict``: the test ELBO and the importance-weighted estimate of
log p(x) (Burda et al. 2015) with ``k`` samples, in nats per example, on the same fixed
binarisation of the test set the trainer reports (MNIST), or the continuous test frames (Frey).
"""

from __future__ import annotations

import time
from pathlib import Path

from trainer.checkpoint import load_checkpoint
from trainer.train import (
    binarized_test_set,
    evaluate_elbo,
    iwae_log_likelihood_batched,
    matmul_precision,
    to_model_input,
)


def evaluate(path: str | Path, k: int = 1000, n: int = 0, data_dir: str | None = None,
             seed: int = 0, progress: bool = False) -> dict:
    """Evaluate a checkpoint; ``n`` = 0 uses the whole test split."""
    from trainer.data import load_dataset

    ck = load_checkpoint(path)
    tc = ck.meta.get("train_config", {})
    name = ck.meta.get("dataset", "mnist")
    if name == "folder":
        ds = load_dataset("folder", data_dir or tc.get("image_folder"), image_size=tuple(ck.config.image_shape))
    else:
        ds = load_dataset(name, data_dir or tc.get("data_dir"))
    x = to_model_input(ds.test_x)
    if ck.meta.get("binarized", False):
        x = binarized_test_set(x)
    if n:
        x = x[:n]
    t0 = time.perf_counter()
    with matmul_precision("highest"):  # reported numbers in exact float32
        elbo = evaluate_elbo(ck.model, x, seed=seed)
        ll = iwae_log_likelihood_batched(ck.model, x, k, seed=seed + 1, progress=progress) if k > 0 else None
    result = {
        "checkpoint": str(path),
        "dataset": name,
        "likelihood": ck.config.likelihood,
        "binarized_test_set": bool(ck.meta.get("binarized", False)),
        "n_test": int(x.shape[0]),
        "test_elbo": elbo["elbo"],
        "test_rec": elbo["rec"],
        "test_kl": elbo["kl"],
    }
    if ll is not None:
        result.update(test_iwae_ll=float(ll.mean()), k=k)
    result["seconds"] = time.perf_counter() - t0
    result["units"] = "nats per example"
    return result
