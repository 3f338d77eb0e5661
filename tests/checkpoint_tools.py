"""Building and tampering with checkpoints for the reader's tests: a tiny complete file (a few KB,
every meta field the app reads), and rewriting a file's metadata or tensors as an editor or a
damaged disk would, with or without a valid checksum."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from trainer.checkpoint import CHECKSUM_KEY, content_digest, save_checkpoint
from trainer.model import VAE, VAEConfig

TINY = VAEConfig(image_shape=(4, 3), hidden=(5,), z_dim=2, activation="tanh", likelihood="gaussian")
N_TEST = 6


def tiny_meta(z_dim: int = TINY.z_dim) -> dict:
    """A meta with every field the app and trainer read, of the types the trainer writes."""
    return {
        "name": "tiny", "title": "Tiny, 2-D latent", "dataset": "frey", "image_shape": [4, 3],
        "likelihood": "gaussian", "binarized": False, "label_names": ["a", "b"],
        "metrics": {"test_elbo": -1.5, "test_iwae_ll": -1.2, "iwae_k": 10, "n_test": N_TEST},
        "history": [{"epoch": 1, "train_elbo": -3.0, "test_elbo": -2.5, "train_kl": 1.0, "lr": 1e-3}],
        "kl_per_dim": [0.5] * z_dim, "wall_time_s": 3.0, "n_train": 10, "n_test": N_TEST,
        "train_config": {"epochs": 1, "data_dir": "../shared/data"}, "provenance": {"dataset": "frey"},
        "directions": {"smile": {"mean_difference": {
            "label": "Smile", "description": "d", "kind": "binary", "unit": "", "source": "s", "n_pos": 3,
            "n_neg": 3, "spread": 1.5, "cv": "random folds", "quality": {"accuracy": 0.8, "auc": None, "n": 6}}}},
        "resume": {"epoch": 1, "batch_idx": 0, "step": 5, "sums": [0.0, 0.0, 0.0]},
    }


def tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A complete checkpoint of :data:`TINY` (weights, test arrays, a direction, resumable state)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = VAE(TINY)
    mu = torch.randn(N_TEST, TINY.z_dim, generator=g)
    arrays = {"test_mu": mu, "test_logvar": torch.randn(N_TEST, TINY.z_dim, generator=g) - 2,
              "test_labels": torch.arange(N_TEST) % 2, "test_embedding": mu.clone(),
              "test_index": torch.arange(N_TEST), "direction.smile.mean_difference": torch.tensor([0.6, 0.8])}
    state = {"rng": torch.arange(16, dtype=torch.uint8), "perm": torch.arange(4),
             "optim.0.exp_avg": torch.zeros(5, 12), "optim.0.step": torch.tensor(5.0)}
    return save_checkpoint(path, model, tiny_meta(), arrays, state)


def put(path: Path, data: bytes) -> Path:
    """Replace a file's bytes. Unlinking first is 50x faster here than truncating in place (ext4
    flushes a file truncated to zero on close), which matters for a thousand rewrites."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)
    return path


def read_raw(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A valid file's string metadata and tensors, as safetensors stores them (copied: the
    tensors safetensors hands out may map the file, which the caller may then overwrite)."""
    with safe_open(str(path), "pt") as f:
        return dict(f.metadata()), {k: f.get_tensor(k).clone() for k in f.keys()}


def write_raw(path: Path, md: dict[str, str], tensors: dict[str, torch.Tensor], checksum: bool = True) -> Path:
    """Write ``md`` and ``tensors`` as a safetensors file, bypassing the project's writer; with a
    freshly computed checksum (an edit the checksum cannot see) or none (a file from before checksums)."""
    md = {k: v for k, v in md.items() if k != CHECKSUM_KEY}
    if checksum:
        md[CHECKSUM_KEY] = content_digest(md, tensors)
    return put(path, st_save(tensors, metadata=md))


def rewrite(path: Path, md: dict[str, str] | None = None, meta: dict | None = None, config: dict | None = None,
            tensors: dict[str, torch.Tensor] | None = None, drop: tuple[str, ...] = (),
            checksum: bool = True) -> Path:
    """Change a file in place: metadata strings ``md``, fields of ``meta`` / ``model_config``
    (merged, JSON-encoded), ``tensors`` replaced or added, ``drop`` removed."""
    old_md, old_t = read_raw(path)
    if meta is not None:
        old_md["meta"] = json.dumps({**json.loads(old_md["meta"]), **meta})
    if config is not None:
        old_md["model_config"] = json.dumps({**json.loads(old_md["model_config"]), **config})
    old_md.update(md or {})
    old_t.update(tensors or {})
    return write_raw(path, old_md, {k: v for k, v in old_t.items() if k not in drop}, checksum)
