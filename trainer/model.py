"""The one model of the project: a VAE (Kingma & Welling 2013, "Auto-Encoding Variational
Bayes"), or with the same MLP encoder and decoder, a plain or a denoising autoencoder.

Safe to import (no side effects, no data access). Every size comes from :class:`VAEConfig`,
so a checkpoint that stores the config rebuilds its own model (see ``trainer/checkpoint.py``).

Shapes: ``B`` batch, ``D = prod(image_shape)`` pixels, ``J = z_dim`` latent dimensions,
``K`` samples per data point. Images enter and leave flat, as ``(B, D)`` floats in [0, 1].

Notation follows the paper: the encoder q_phi(z|x) = N(mu, diag(exp(logvar))) (eq. 9),
z = mu + sigma * eps with eps ~ N(0, I) (the reparameterisation trick, eq. 10), and the
closed-form KL to the prior N(0, I) (Appendix B). The decoder p_theta(x|z) is Bernoulli
(logits) for binary-ish data such as MNIST, or Gaussian with a learned per-pixel variance
for continuous data such as Frey Face (the paper's Appendix C.2 setup).

``VAEConfig.kind`` picks the model (the lecture notes' "Autoencoders" and "Denoising
Autoencoders"): ``vae`` as above; ``ae`` a deterministic code z(x) (no fc_logvar, no
sampling, no prior) trained on the squared error ||x - x'||^2 (or, as an option, the
Bernoulli cross-entropy); ``dae`` the same network trained to give back the clean x from a
corrupted x~ ~ C(x~|x) (the corruption is the trainer's, ``trainer/corruption.py``). Neither
autoencoder defines p(z) or p(x): :meth:`VAE.sample` and :func:`iwae_log_likelihood` refuse them.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("vae", "ae", "dae")
KIND_NAMES = {"vae": "VAE", "ae": "autoencoder", "dae": "denoising autoencoder"}
# The decoder's objective per kind. "squared_error" is the notes' AE loss ||x - x'||^2 with
# x' = sigmoid(logits); "bernoulli" the cross-entropy; "gaussian" a learned per-pixel variance,
# whose density only the VAE's ELBO uses.
KIND_LIKELIHOODS = {"vae": ("bernoulli", "gaussian"), "ae": ("squared_error", "bernoulli"),
                    "dae": ("squared_error", "bernoulli")}
LIKELIHOODS = ("bernoulli", "gaussian", "squared_error")
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus, "elu": nn.ELU}
LOG_2PI = math.log(2.0 * math.pi)

# Bounds on a config, far above any model this project trains (784-512-256-20 has 0.8M
# parameters) and low enough that a config read from a file cannot size gigabytes.
MAX_SIDE = 4096  # pixels per image side
MAX_Z_DIM = 4096
MAX_WIDTH = 1 << 16  # units per hidden layer
MAX_LAYERS = 16
MAX_PARAMETERS = 1 << 28  # 1 GiB of float32 weights
MAX_ABS_LOGVAR = 50.0  # |min_logvar|; exp(-logvar) stays finite in float32 up to about 88


def _short(v) -> str:
    """A value for an error message, never longer than a line."""
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _int(name: str, v, lo: int, hi: int) -> int:
    """``v`` as an int in [lo, hi]; bools and floats (even 10.0) are refused."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {_short(v)}")
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {_short(v)}")
    return int(v)


def _int_tuple(name: str, v, lo: int, hi: int) -> tuple[int, ...]:
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)):
        raise ValueError(f"{name} must be a list of integers, got {_short(v)}")
    if len(v) > MAX_LAYERS:
        raise ValueError(f"{name} has {len(v)} entries, at most {MAX_LAYERS} are allowed")
    return tuple(_int(f"{name} entries", x, lo, hi) for x in v)


@dataclass
class VAEConfig:
    """Architecture of one model. Everything needed to rebuild the module from its weights."""

    image_shape: tuple[int, int] = (28, 28)
    hidden: tuple[int, ...] = (400,)  # encoder hidden widths; the decoder mirrors them
    z_dim: int = 20
    activation: str = "relu"
    likelihood: str = "bernoulli"
    # Gaussian decoder only: floor on the per-pixel log-variance. Without it a learned
    # variance can collapse onto near-constant pixels and the density diverges.
    min_logvar: float = -6.0
    # vae | ae | dae (module docstring). Files written before it existed hold VAEs and lack it.
    kind: str = "vae"

    def __post_init__(self) -> None:
        # Types and bounds are checked before anything is sized from them: a config read from a
        # file must not make VAE(config) allocate gigabytes, and 10.0 or True is not a size.
        self.image_shape = _int_tuple("image_shape", self.image_shape, 1, MAX_SIDE)
        if len(self.image_shape) != 2:
            raise ValueError(f"image_shape must be (height, width), got {len(self.image_shape)} numbers")
        self.hidden = _int_tuple("hidden", self.hidden, 1, MAX_WIDTH)
        if len(self.hidden) > MAX_LAYERS:
            raise ValueError(f"hidden has {len(self.hidden)} layers, at most {MAX_LAYERS} are allowed")
        self.z_dim = _int("z_dim", self.z_dim, 1, MAX_Z_DIM)
        for name, known in (("kind", KINDS), ("activation", ACTIVATIONS), ("likelihood", LIKELIHOODS)):
            v = getattr(self, name)
            if not isinstance(v, str) or v not in known:
                raise ValueError(f"{name} must be one of {sorted(known)}, got {_short(v)}")
        if self.likelihood not in KIND_LIKELIHOODS[self.kind]:
            raise ValueError(f"likelihood {self.likelihood!r} does not apply to kind {self.kind!r}; "
                             f"use one of {list(KIND_LIKELIHOODS[self.kind])}")
        m = self.min_logvar
        if isinstance(m, bool) or not isinstance(m, numbers.Real) or not -MAX_ABS_LOGVAR <= m <= MAX_ABS_LOGVAR:
            raise ValueError(f"min_logvar must be a finite number in [-{MAX_ABS_LOGVAR:g}, {MAX_ABS_LOGVAR:g}], "
                             f"got {_short(m)}")
        self.min_logvar = float(m)
        if self.n_parameters > MAX_PARAMETERS:
            raise ValueError(f"the model would have {self.n_parameters:,} parameters, at most {MAX_PARAMETERS:,} "
                             "are allowed")

    @property
    def n_parameters(self) -> int:
        """Weights and biases of :class:`VAE` for this config, counted without building it."""
        enc = [self.x_dim, *self.hidden]
        dec = [self.z_dim, *reversed(self.hidden)]
        n = sum(a * b + b for a, b in zip(enc[:-1], enc[1:]))
        n += (2 if self.has_prior else 1) * (enc[-1] * self.z_dim + self.z_dim)  # fc_mu (+ fc_logvar)
        n += sum(a * b + b for a, b in zip(dec[:-1], dec[1:]))
        heads = 2 if self.likelihood == "gaussian" else 1  # fc_out (+ fc_out_logvar)
        return n + heads * (dec[-1] * self.x_dim + self.x_dim)

    @property
    def has_prior(self) -> bool:
        """True for a VAE: a prior p(z) = N(0, I), a posterior q(z|x) and so a density p(x).
        An autoencoder (plain or denoising) has a deterministic code and none of these."""
        return self.kind == "vae"

    @property
    def x_dim(self) -> int:
        return self.image_shape[0] * self.image_shape[1]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        """The inverse of :meth:`to_dict`: every field must be present (checkpoints always
        store them all) except those added later (:data:`ADDED_FIELDS`, which take their
        default), unknown keys are refused, and values are checked as in the constructor."""
        if not isinstance(d, dict):
            raise ValueError(f"model config must be a JSON object, got {type(d).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k)[:40] for k in set(d) - set(known))
        missing = [k for k in known if k not in d and k not in ADDED_FIELDS]
        if unknown:
            raise ValueError(f"unknown model config keys: {unknown[:5]}")
        if missing:
            raise ValueError(f"model config lacks {missing}")
        return cls(**d)


# Config fields newer than the format's first files: absent in those files, they mean the default.
ADDED_FIELDS = ("kind",)


def _mlp(sizes: list[int], activation: str) -> nn.Sequential:
    """Linear layers with an activation after each (the caller adds the output head)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


class VAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = _mlp([c.x_dim, *c.hidden], c.activation)
        self.fc_mu = nn.Linear(c.hidden[-1] if c.hidden else c.x_dim, c.z_dim)
        # An autoencoder's code is deterministic: no posterior variance to predict.
        self.fc_logvar = nn.Linear(c.hidden[-1] if c.hidden else c.x_dim, c.z_dim) if c.has_prior else None
        dec_hidden = list(reversed(c.hidden))
        self.decoder = _mlp([c.z_dim, *dec_hidden], c.activation)
        last = dec_hidden[-1] if dec_hidden else c.z_dim
        # Bernoulli: one logit per pixel. Gaussian: a mean (through a sigmoid) and a log-variance.
        self.fc_out = nn.Linear(last, c.x_dim)
        self.fc_out_logvar = nn.Linear(last, c.x_dim) if c.likelihood == "gaussian" else None

    # --- the paper's three pieces -------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """q(z|x): ``x`` (B, D) in [0, 1] -> ``mu, logvar`` each (B, J). An autoencoder gives
        its code z(x) as ``mu`` and ``None`` for ``logvar``."""
        h = self.encoder(x)
        return self.fc_mu(h), None if self.fc_logvar is None else self.fc_logvar(h)

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I) (eq. 10). (B, J) -> (K, B, J)."""
        eps = torch.randn((n_samples, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
        return eps.mul_(torch.exp(0.5 * logvar)).add_(mu)  # in place on the fresh eps: no temporaries

    def decode_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """p(x|z) parameters for ``z`` (..., J): Bernoulli ``(logits, None)`` or Gaussian
        ``(mean, logvar)``, each (..., D)."""
        h = self.decoder(z)
        out = self.fc_out(h)
        if self.fc_out_logvar is None:
            return out, None
        mean = torch.sigmoid(out)
        # Smooth floor at min_logvar (see VAEConfig.min_logvar).
        m = self.config.min_logvar
        logvar = m + F.softplus(self.fc_out_logvar(h) - m)
        return mean, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean image E[x|z] in [0, 1]: ``z`` (..., J) -> (..., D). What the app displays."""
        a, _ = self.decode_params(z)
        return torch.sigmoid(a) if self.fc_out_logvar is None else a

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean images of ``n`` draws from the prior z ~ N(0, I): (n, D). A VAE's only: an
        autoencoder has no prior to draw from (ValueError)."""
        if not self.config.has_prior:
            raise ValueError(f"an autoencoder (kind {self.config.kind!r}) defines no prior p(z) to sample from")
        p = next(self.parameters())
        z = torch.randn((n, self.config.z_dim), generator=generator, dtype=p.dtype, device=p.device)
        return self.decode(z)

    def forward(self, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None) -> dict:
        """One pass for the objective: ``x`` (B, D) -> dict with mu, logvar (B, J), z (K, B, J)
        and the decoder's parameters (K, B, D). An autoencoder: logvar None, K = 1, z = mu."""
        mu, logvar = self.encode(x)
        if logvar is None:
            a, _ = self.decode_params(mu)
            return {"mu": mu, "logvar": None, "z": mu[None], "dec": a[None], "dec_logvar": None}
        z = self.reparameterize(mu, logvar, n_samples, generator)
        if n_samples == 1:  # decode (B, J) as a plain matrix (cheaper than a batched (1, B, J) matmul)
            a, b = self.decode_params(z[0])
            return {"mu": mu, "logvar": logvar, "z": z, "dec": a[None], "dec_logvar": None if b is None else b[None]}
        a, b = self.decode_params(z)
        return {"mu": mu, "logvar": logvar, "z": z, "dec": a, "dec_logvar": b}


# --- the objective, as pure functions ------------------------------------------------------

def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per dimension, closed form (paper, Appendix B):
    -1/2 (1 + log sigma^2 - mu^2 - sigma^2). (B, J) -> (B, J); sum over J for the total."""
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())


def log_likelihood(x: torch.Tensor, dec: torch.Tensor, dec_logvar: torch.Tensor | None) -> torch.Tensor:
    """log p(x|z) summed over pixels: ``x`` (B, D), decoder parameters (..., B, D) -> (..., B).

    Bernoulli: ``dec`` are logits; x may be binary or grey (grey gives the cross-entropy the
    pytorch/examples recipe trains on). Gaussian: ``dec`` is the mean, a continuous density."""
    if dec_logvar is None:
        return -F.binary_cross_entropy_with_logits(dec, x.expand_as(dec), reduction="none").sum(-1)
    return -0.5 * (LOG_2PI + dec_logvar + (x - dec).pow(2) * torch.exp(-dec_logvar)).sum(-1)


def loss_function(x: torch.Tensor, out: dict, beta: float = 1.0) -> dict:
    """Negative (beta-)ELBO averaged over the batch, with its parts (eq. 10 of the paper,
    L samples averaged). Returns tensors: ``loss`` (what to minimise), ``rec`` = E_q log p(x|z),
    ``kl`` = KL(q||p), ``elbo`` = rec - kl (always with beta = 1, so it is an honest bound)."""
    rec = log_likelihood(x, out["dec"], out["dec_logvar"]).mean(0)  # average the K samples: (B,)
    kl = kl_divergence(out["mu"], out["logvar"]).sum(-1)  # (B,)
    rec_m, kl_m = rec.mean(), kl.mean()
    return {"loss": -(rec_m - beta * kl_m), "rec": rec_m, "kl": kl_m, "elbo": rec_m - kl_m}


def reconstruction_error(x: torch.Tensor, dec: torch.Tensor, likelihood: str = "squared_error") -> torch.Tensor:
    """An autoencoder's error per image, summed over pixels: ``x`` (B, D), logits ``dec``
    (..., B, D) -> (..., B). ``squared_error``: ||x - x'||^2 with x' = sigmoid(dec) (the lecture
    notes' AE objective); ``bernoulli``: the cross-entropy -log p(x|z), nats."""
    if likelihood == "squared_error":
        return (x - torch.sigmoid(dec)).pow(2).sum(-1)
    if likelihood == "bernoulli":
        return -log_likelihood(x, dec, None)
    raise ValueError(f"reconstruction_error: likelihood must be squared_error or bernoulli, got {likelihood!r}")


def autoencoder_loss(x: torch.Tensor, out: dict, likelihood: str = "squared_error") -> dict:
    """An autoencoder's objective averaged over the batch: ``loss`` (what to minimise) and
    ``rec``, the same reconstruction error (:func:`reconstruction_error`). ``x`` is the clean
    target: for a denoising autoencoder ``out`` came from the corrupted x~, so this is the
    notes' -E log p(x' = x | z(x~))."""
    rec = reconstruction_error(x, out["dec"], likelihood).mean()
    return {"loss": rec, "rec": rec}


def objective(config: VAEConfig, x: torch.Tensor, out: dict, beta: float = 1.0) -> dict:
    """The training objective of a model with ``config``: :func:`loss_function` for a VAE,
    :func:`autoencoder_loss` for an autoencoder. Always has ``loss`` and ``rec``."""
    if config.has_prior:
        return loss_function(x, out, beta)
    return autoencoder_loss(x, out, config.likelihood)


@torch.no_grad()
def iwae_log_likelihood(
    model: VAE, x: torch.Tensor, k: int = 1000, chunk: int = 250, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Importance-weighted estimate of log p(x) (Burda et al. 2015, eq. 8), per example.

    log p(x) >= log 1/k sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x); the bound tightens as k grows
    and k = 1 is the ELBO's single-sample estimate. ``x`` (B, D) -> (B,), in nats. A VAE's only:
    an autoencoder defines no p(x) (ValueError)."""
    if not model.config.has_prior:
        raise ValueError(f"an autoencoder (kind {model.config.kind!r}) defines no p(x) to estimate")
    mu, logvar = model.encode(x)
    log_ws = []
    done = 0
    while done < k:
        n = min(chunk, k - done)
        z = model.reparameterize(mu, logvar, n, generator)  # (n, B, J)
        a, b = model.decode_params(z)
        log_px_z = log_likelihood(x, a, b)  # (n, B)
        log_pz = -0.5 * (LOG_2PI + z.pow(2)).sum(-1)
        eps2 = (z - mu).pow(2) * torch.exp(-logvar)
        log_qz = -0.5 * (LOG_2PI + logvar + eps2).sum(-1)
        log_ws.append(log_px_z + log_pz - log_qz)
        done += n
    log_w = torch.cat(log_ws, 0)
    return torch.logsumexp(log_w, 0) - math.log(k)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "KINDS",
    "KIND_NAMES",
    "VAEConfig",
    "VAE",
    "kl_divergence",
    "log_likelihood",
    "loss_function",
    "reconstruction_error",
    "autoencoder_loss",
    "objective",
    "iwae_log_likelihood",
    "count_parameters",
]
