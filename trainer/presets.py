"""The shipped checkpoints: one TrainConfig each. ``python -m trainer rebuild`` trains them all.

Sizes follow the paper's Fig. 5 (MNIST with 2, 5, 10 and 20 latent dimensions) and its Frey
Face experiments (2 and 10), with budgets chosen to fit a 2-core CPU (README: rebuild time).
"""

from __future__ import annotations

from trainer.config import TrainConfig

CHECKPOINT_DIR = "checkpoints"

_MNIST = dict(dataset="mnist", hidden=(512, 256), activation="relu", batch_size=128, lr=1e-3,
              lr_schedule="cosine", lr_min=1e-5, kl_warmup_epochs=5)
_FREY = dict(dataset="frey", hidden=(200,), activation="tanh", batch_size=100, lr=1e-3,
             lr_schedule="cosine", lr_min=1e-5, min_logvar=-6.0)

PRESETS: dict[str, dict] = {
    "mnist-z2": dict(_MNIST, z_dim=2, epochs=60, title="MNIST, 2-D latent"),
    "mnist-z5": dict(_MNIST, z_dim=5, epochs=60, title="MNIST, 5-D latent"),
    "mnist-z10": dict(_MNIST, z_dim=10, epochs=60, title="MNIST, 10-D latent"),
    "mnist-z20": dict(_MNIST, z_dim=20, epochs=200, title="MNIST, 20-D latent"),
    "frey-z2": dict(_FREY, z_dim=2, epochs=1000, title="Frey Face, 2-D latent"),
    "frey-z10": dict(_FREY, z_dim=10, epochs=1000, title="Frey Face, 10-D latent"),
}


def preset_config(name: str, data_dir: str | None = None, out_dir: str = CHECKPOINT_DIR, **overrides) -> TrainConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    d = dict(PRESETS[name], name=name, out=f"{out_dir}/{name}.safetensors", data_dir=data_dir)
    d.update(overrides)
    return TrainConfig(**d)
