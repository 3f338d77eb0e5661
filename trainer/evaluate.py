"""Honest evaluation: the test set every number is reported on, the numbers, and the app's arrays.

``evaluate(path, k=1000) -> dict``: the test ELBO and the importance-weighted estimate of
log p(x) (Burda et al. 2015) with ``k`` samples, in nats per example, on the same fixed
binarisation of the test set the trainer reports (MNIST), or the continuous test frames (Frey).
An autoencoder (``kind`` ae or dae) has neither an ELBO nor a p(x): its numbers are
reconstruction errors on the test set (:func:`evaluate_reconstruction`).

The trainer (``trainer/train.py``) uses the same pieces: :func:`eval_inputs` for the test set,
:func:`evaluate_elbo` after every epoch, :func:`iwae_log_likelihood_batched` and
:func:`latent_arrays` (latent means, KL per dimension, the 2-D UMAP map) for the final file.
Every reported number is computed in exact float32 (:func:`matmul_precision` ``"highest"``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import torch

from trainer.checkpoint import load_checkpoint
from trainer.corruption import corrupt
from trainer.model import VAE, iwae_log_likelihood, kl_divergence, loss_function, reconstruction_error

# Seed of the one fixed binarisation of the test set used for every reported likelihood
# (the "dynamically binarised" test set, binarised once so numbers are comparable).
TEST_BINARIZE_SEED = 20131220


@contextlib.contextmanager
def matmul_precision(precision: str):
    """Temporarily set torch's float32 matmul precision (restored afterwards)."""
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


# --- the test set --------------------------------------------------------------------------------

def to_model_input(x_uint8: torch.Tensor) -> torch.Tensor:
    """(N, H, W) uint8 -> (N, H*W) float32 in [0, 1]."""
    return x_uint8.reshape(x_uint8.shape[0], -1).to(torch.float32).div_(255.0)


def binarized_test_set(x: torch.Tensor) -> torch.Tensor:
    """The one fixed stochastic binarisation of a grey test set (N, D) used for reporting."""
    g = torch.Generator().manual_seed(TEST_BINARIZE_SEED)
    return torch.bernoulli(x, generator=g)


def eval_inputs(test_x: torch.Tensor, binarized: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A test split (M, H, W) uint8 -> (what likelihoods are reported on, the grey levels), each
    (M, H*W) float32: the first is :func:`binarized_test_set` of the second when ``binarized``
    (a model trained with dynamic binarisation), else the same tensor."""
    grey = to_model_input(test_x)
    return (binarized_test_set(grey) if binarized else grey), grey


# --- the numbers ---------------------------------------------------------------------------------

@torch.no_grad()
def evaluate_elbo(model: VAE, x: torch.Tensor, batch: int = 2000, seed: int = 0) -> dict:
    """Test ELBO, reconstruction and KL (nats per example, one eps sample, float32)."""
    g = torch.Generator(x.device).manual_seed(seed)
    tot = {"elbo": 0.0, "rec": 0.0, "kl": 0.0}
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch]
        parts = loss_function(xb, model(xb, 1, g))
        for k in tot:
            tot[k] += float(parts[k]) * xb.shape[0]
    return {k: v / x.shape[0] for k, v in tot.items()}


@torch.no_grad()
def evaluate_reconstruction(model: VAE, x: torch.Tensor, corruption: tuple[str, float] | None = None,
                            seed: int = 0, batch: int = 2000) -> dict:
    """An autoencoder's errors per image on test images ``x`` (N, D), the targets; the encoder sees
    ``x`` itself, or with ``corruption`` = (kind, level) a seeded corruption of it (a denoising
    autoencoder's objective). ``loss``: the model's own objective (its ``likelihood``); ``sse``:
    squared error ||x - x'||^2; ``bce``: cross-entropy, nats. Float32, means over N."""
    g = torch.Generator(x.device).manual_seed(seed)  # on the data's device (a GPU run evaluates there)
    tot = {"loss": 0.0, "sse": 0.0, "bce": 0.0}
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch]
        logits = model(corrupt(xb, *corruption, generator=g) if corruption else xb)["dec"][0]
        for key, lik in (("loss", model.config.likelihood), ("sse", "squared_error"), ("bce", "bernoulli")):
            tot[key] += float(reconstruction_error(xb, logits, lik).sum())
    return {k: v / x.shape[0] for k, v in tot.items()}


def autoencoder_metrics(model: VAE, x: torch.Tensor, x_grey: torch.Tensor, corruption: tuple[str, float] | None,
                        seed: int = 0) -> dict:
    """The final numbers of an autoencoder: ``test_loss`` (its objective on ``x``, the test set
    as trained on, corrupted for a DAE), ``test_sse`` / ``test_bce`` (clean grey inputs ``x_grey``
    reconstructed: comparable across every model), and for a DAE ``test_sse_corrupted`` (corrupted
    grey inputs, clean targets: how well it denoises)."""
    clean = evaluate_reconstruction(model, x_grey)
    out = {"test_loss": evaluate_reconstruction(model, x, corruption, seed)["loss"], "test_sse": clean["sse"],
           "test_bce": clean["bce"], "n_test": int(x.shape[0])}
    if corruption:
        out["test_sse_corrupted"] = evaluate_reconstruction(model, x_grey, corruption, seed)["sse"]
    return out


def iwae_log_likelihood_batched(model: VAE, x: torch.Tensor, k: int, seed: int = 0, batch: int = 100,
                                progress: bool = False) -> torch.Tensor:
    """Importance-weighted log p(x) per example over a large set, in batches: (N, D) -> (N,)."""
    g = torch.Generator(x.device).manual_seed(seed)
    out = []
    rng = range(0, x.shape[0], batch)
    if progress:
        from tqdm import tqdm

        rng = tqdm(rng, desc=f"log p(x), k={k}", unit="batch", file=sys.stderr)
    for i in rng:
        out.append(iwae_log_likelihood(model, x[i : i + batch], k=k, chunk=min(k, 250), generator=g))
    return torch.cat(out)


# --- what the app needs --------------------------------------------------------------------------

@torch.no_grad()
def encode_all(model: VAE, x: torch.Tensor, batch: int = 4000) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Latent means and log-variances of ``x`` (N, D): each (N, J); an autoencoder's codes and None."""
    mus, lvs = [], []
    for i in range(0, x.shape[0], batch):
        mu, lv = model.encode(x[i : i + batch])
        mus.append(mu)
        lvs.append(lv)
    return torch.cat(mus), None if lvs[0] is None else torch.cat(lvs)


def umap_embedding(mu: torch.Tensor, seed: int = 42) -> torch.Tensor:
    """2-D UMAP of latent means (N, J) -> (N, 2) float32; the means themselves when J <= 2."""
    if mu.shape[1] <= 2:
        out = mu if mu.shape[1] == 2 else torch.cat([mu, torch.zeros_like(mu)], 1)
        return out.to(torch.float32).clone()
    import umap  # heavy (numba); imported only when needed

    reducer = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=seed)
    return torch.from_numpy(reducer.fit_transform(mu.numpy())).to(torch.float32)


def latent_arrays(model: VAE, x_grey: torch.Tensor, labels: torch.Tensor,
                  use_umap: bool) -> tuple[dict[str, torch.Tensor], list[float] | None, str]:
    """The checkpoint arrays the app opens instantly, for test images ``x_grey`` (N, D) with
    ``labels`` (N,): ``test_mu``/``test_logvar`` (N, J), ``test_labels``/``test_index`` (N,),
    ``test_embedding`` (N, 2). Also the KL per latent dimension (J floats, mean over N) and how the
    embedding was made: ``"umap"``, or ``"latent"`` (the first two dimensions of the means).
    An autoencoder: its codes as ``test_mu``, no ``test_logvar``, and None for the KL."""
    mu, logvar = encode_all(model, x_grey)
    # trained on a GPU: the arrays live on the host
    mu, logvar = mu.cpu(), (None if logvar is None else logvar.cpu())
    kl_dim = None if logvar is None else kl_divergence(mu, logvar).mean(0).tolist()
    emb = umap_embedding(mu) if (use_umap or mu.shape[1] <= 2) else mu[:, :2].clone()
    arrays = {
        "test_mu": mu.float(), "test_labels": labels.to(torch.int64),
        "test_embedding": emb, "test_index": torch.arange(mu.shape[0], dtype=torch.int64),
    }
    if logvar is not None:
        arrays["test_logvar"] = logvar.float()
    return arrays, kl_dim, "umap" if mu.shape[1] > 2 and use_umap else "latent"


# --- a checkpoint, from the command line ---------------------------------------------------------

def evaluate(path: str | Path, k: int = 1000, n: int = 0, data_dir: str | None = None,
             seed: int = 0, progress: bool = False) -> dict:
    """Evaluate a checkpoint; ``n`` = 0 uses the whole test split. ``data_dir`` overrides where
    the data is read from (the datasets folder, or the image folder of a folder-trained model)."""
    from trainer.data import load_dataset

    ck = load_checkpoint(path)
    tc = ck.meta.get("train_config", {})
    name = ck.meta.get("dataset", "mnist")
    ds = load_dataset(name, data_dir or tc.get("data_dir"), image_folder=data_dir or tc.get("image_folder"),
                      image_size=tuple(ck.config.image_shape))
    binarized = bool(ck.meta.get("binarized", False))
    x, _ = eval_inputs(ds.test_x, binarized)
    if n:
        x = x[:n]
    t0 = time.perf_counter()
    if not ck.config.has_prior:
        return _evaluate_autoencoder(ck, x, eval_inputs(ds.test_x, False)[1][: n or None], seed, t0)
    with matmul_precision("highest"):  # reported numbers in exact float32
        elbo = evaluate_elbo(ck.model, x, seed=seed)
        ll = iwae_log_likelihood_batched(ck.model, x, k, seed=seed + 1, progress=progress) if k > 0 else None
    result = {
        "checkpoint": str(path),
        "dataset": name,
        "likelihood": ck.config.likelihood,
        "binarized_test_set": binarized,
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


def _evaluate_autoencoder(ck, x: torch.Tensor, x_grey: torch.Tensor, seed: int, t0: float) -> dict:
    """:func:`evaluate` for an autoencoder: reconstruction errors (:func:`autoencoder_metrics`)."""
    c = ck.meta.get("corruption")
    corruption = (c["kind"], c["level"]) if ck.config.kind == "dae" and isinstance(c, dict) else None
    with matmul_precision("highest"):
        metrics = autoencoder_metrics(ck.model, x, x_grey, corruption, seed=seed)
    return {"checkpoint": str(ck.path), "dataset": ck.meta.get("dataset", "mnist"), "kind": ck.config.kind,
            "loss": ck.config.likelihood, "corruption": c if corruption else None,
            "binarized_test_set": bool(ck.meta.get("binarized", False)), **metrics,
            "log_px": "none: an autoencoder defines no p(x)", "seconds": time.perf_counter() - t0,
            "units": "per image: squared error in grey levels, cross-entropy in nats"}
