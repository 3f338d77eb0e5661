"""Tiny checkpoints for the explorer and app tests: random weights, random test-set arrays
of the documented names and shapes, plausible meta. A few hidden units, so they load in ms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainer.checkpoint import save_checkpoint
from trainer.model import VAE, VAEConfig


def make_checkpoint(
    path: Path,
    dataset: str = "mnist",
    z_dim: int = 2,
    n_test: int = 60,
    hidden: tuple[int, ...] = (8,),
    seed: int = 0,
    drop_arrays: tuple[str, ...] = (),
    activation: str = "relu",
    kind: str = "vae",
) -> Path:
    """Write a small random checkpoint to ``path`` (MNIST: 28x28 Bernoulli, digit labels;
    Frey: 28x20 Gaussian, frame-index labels) and return ``path``. ``kind`` ae or dae: an
    autoencoder with the squared-error loss, codes spread like an unregularised AE's (far from
    N(0, I): offset and scaled), no test_logvar, reconstruction-error metrics."""
    torch.manual_seed(seed)
    shape = (28, 28) if dataset == "mnist" else (28, 20)
    lik = ("bernoulli" if dataset == "mnist" else "gaussian") if kind == "vae" else "squared_error"
    model = VAE(VAEConfig(image_shape=shape, hidden=hidden, z_dim=z_dim, activation=activation, likelihood=lik,
                          kind=kind))
    g = np.random.default_rng(seed)
    mu = g.standard_normal((n_test, z_dim)).astype(np.float32)
    if kind != "vae":
        mu = mu * 6.0 + 10.0
    arrays = {
        "test_mu": mu,
        "test_logvar": (g.standard_normal((n_test, z_dim)) * 0.1 - 2).astype(np.float32),
        "test_labels": (np.arange(n_test) % 10 if dataset == "mnist" else np.arange(n_test) * 10).astype(np.int64),
        "test_embedding": mu.copy() if z_dim == 2 else g.standard_normal((n_test, 2)).astype(np.float32) * 5,
        "test_index": np.arange(n_test, dtype=np.int64),
    }
    drop_arrays = (*drop_arrays, "test_logvar") if kind != "vae" else drop_arrays
    arrays = {k: torch.from_numpy(v) for k, v in arrays.items() if k not in drop_arrays}
    name = path.stem
    history = [
        {"epoch": e, "train_elbo": -200.0 + 20 * e, "train_kl": 10.0 + e, "train_rec": -190.0 + 21 * e,
         "test_elbo": -205.0 + 20 * e, "test_kl": 10.0 + e, "test_rec": -195.0 + 21 * e, "lr": 1e-3,
         "beta": 1.0, "seconds": 1.0}
        for e in range(1, 4)
    ]
    meta = {
        "name": name, "title": f"{dataset} z={z_dim} (test)", "dataset": dataset, "image_shape": list(shape),
        "likelihood": lik, "metrics": {"test_elbo": -145.0, "test_iwae_ll": -140.0, "iwae_k": 100, "n_test": n_test},
        "history": history, "provenance": {"dataset": dataset}, "train_config": {"epochs": 3},
        "wall_time_s": 12.0, "kl_per_dim": [float(v) for v in np.linspace(2.0, 0.0, z_dim)],
    }
    if kind != "vae":
        meta.pop("kl_per_dim")
        meta["metrics"] = {"test_loss": 30.0, "test_sse": 30.0, "test_bce": 90.0, "n_test": n_test}
        meta["history"] = [{"epoch": e, "train_loss": 60.0 - 10 * e, "test_loss": 62.0 - 10 * e, "lr": 1e-3,
                            "seconds": 1.0} for e in range(1, 4)]
        if kind == "dae":
            meta["corruption"] = {"kind": "masking", "level": 0.3}
    return save_checkpoint(path, model, meta, arrays)
