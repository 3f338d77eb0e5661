"""The shipped checkpoints: one TrainConfig each. ``python -m trainer rebuild`` trains them all.

Sizes follow the paper's Fig. 5 (MNIST with 2, 5, 10 and 20 latent dimensions) and its Frey
Face experiments (2 and 10), with budgets chosen to fit a 2-core CPU (README: rebuild time).
Beside the 2-D and 20-D MNIST VAEs, an autoencoder and a denoising autoencoder (masking noise,
a third of the pixels) with the same network and epochs, trained on the lecture notes'
squared error ||x - x'||^2 (grey levels, no binarisation): the Compare tab sets them side by side.
"""

from __future__ import annotations

from trainer.config import TrainConfig

CHECKPOINT_DIR = "checkpoints"

_MNIST = dict(dataset="mnist", hidden=(512, 256), activation="relu", batch_size=128, lr=1e-3,
              lr_schedule="cosine", lr_min=1e-5, kl_warmup_epochs=5)
# The autoencoders: the VAE's network and optimisation; no KL to warm up; the notes' squared error.
_MNIST_AE = dict(_MNIST, kind="ae", kl_warmup_epochs=0.0, likelihood="squared_error")
_MNIST_DAE = dict(_MNIST_AE, kind="dae", corruption="masking", corruption_level=0.3)
_FREY = dict(dataset="frey", hidden=(200,), activation="tanh", batch_size=100, lr=1e-3,
             lr_schedule="cosine", lr_min=1e-5, min_logvar=-6.0)

PRESETS: dict[str, dict] = {
    "mnist-z2": dict(_MNIST, z_dim=2, epochs=60, title="MNIST, 2-D latent"),
    "mnist-z5": dict(_MNIST, z_dim=5, epochs=60, title="MNIST, 5-D latent"),
    "mnist-z10": dict(_MNIST, z_dim=10, epochs=60, title="MNIST, 10-D latent"),
    "mnist-z20": dict(_MNIST, z_dim=20, epochs=200, title="MNIST, 20-D latent"),
    "mnist-ae-z2": dict(_MNIST_AE, z_dim=2, epochs=60, title="MNIST autoencoder, 2-D code"),
    "mnist-dae-z2": dict(_MNIST_DAE, z_dim=2, epochs=60, title="MNIST denoising autoencoder, 2-D code"),
    "mnist-ae-z20": dict(_MNIST_AE, z_dim=20, epochs=200, title="MNIST autoencoder, 20-D code"),
    "mnist-dae-z20": dict(_MNIST_DAE, z_dim=20, epochs=200, title="MNIST denoising autoencoder, 20-D code"),
    "frey-z2": dict(_FREY, z_dim=2, epochs=1000, title="Frey Face, 2-D latent"),
    "frey-z10": dict(_FREY, z_dim=10, epochs=1000, title="Frey Face, 10-D latent"),
}


def preset_config(name: str, data_dir: str | None = None, out_dir: str = CHECKPOINT_DIR, **overrides) -> TrainConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    d = dict(PRESETS[name], name=name, out=f"{out_dir}/{name}.safetensors", data_dir=data_dir)
    d.update(overrides)
    return TrainConfig(**d)
