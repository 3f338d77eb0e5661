"""Training as a function: ``train(TrainConfig(...)) -> Path`` of the written checkpoint.

The loop follows the paper's AEVB algorithm (Kingma & Welling 2013, Algorithm 1): minibatch M,
L samples of eps per data point, gradient of the (beta-weighted) ELBO, Adam. What makes it fast:
the whole dataset lives in memory as one float tensor and each step gathers a batch with one
index op (no DataLoader, no per-sample Python), the Bernoulli likelihood uses logits, Adam is
fused, and the float32 matmuls may use bfloat16 products with float32 accumulation (oneDNN's
"medium" float32 matmul precision, on CPUs with AMX/AVX512-BF16; measured in
``bench/throughput.py``). Every reported number (test ELBO, log p(x)) is computed in exact float32.

What makes it safe: every write is atomic; a resumable checkpoint (weights, Adam moments, RNG
state, the epoch's permutation and position) is written at the end of every epoch and on
Ctrl-C; ``resume=True`` continues bit-for-bit; a non-finite loss stops the run with a message
and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from trainer.model import VAE, VAEConfig, iwae_log_likelihood, kl_divergence, loss_function

# Seed of the one fixed binarisation of the test set used for every reported likelihood
# (the "dynamically binarised" test set, binarised once so numbers are comparable).
TEST_BINARIZE_SEED = 20131220


@dataclass
class TrainConfig:
    """Everything a run needs. Field names double as ``python -m trainer train`` flags."""

    dataset: str = "mnist"  # mnist | frey | folder
    data_dir: str | None = None  # default: trainer.data.default_data_dir()
    download: bool = False
    image_folder: str | None = None  # for dataset=folder: the folder of images
    image_size: tuple[int, int] = (28, 28)  # for dataset=folder: (H, W) after resizing
    out: str = "runs/model.safetensors"
    name: str | None = None
    title: str | None = None
    # model
    z_dim: int = 20
    hidden: tuple[int, ...] = (400,)
    activation: str = "relu"
    likelihood: str | None = None  # default: bernoulli for mnist/folder, gaussian for frey
    min_logvar: float = -6.0
    # objective
    beta: float = 1.0  # KL weight (beta-VAE); reported ELBOs always use beta = 1
    kl_warmup_epochs: float = 0.0  # beta ramps linearly from 0 over this many epochs
    n_samples: int = 1  # L in the paper
    binarize: bool = True  # dynamic binarisation (Bernoulli likelihood only)
    # optimisation
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine | exponential
    lr_min: float = 1e-5  # cosine: final lr; exponential: floor
    lr_gamma: float = 0.99  # exponential: per-epoch factor
    seed: int = 0
    bf16: bool = False  # autocast forward passes to bfloat16 (CPU); evaluation stays float32
    # torch float32 matmul precision while training: "highest" (exact float32), "high" or
    # "medium" (bf16 products, float32 accumulation: ~1.15x faster here, same loss curve).
    matmul_precision: str = "medium"
    threads: int = 0  # torch threads; 0 = leave torch's default
    # evaluation and what the app needs
    iwae_k: int = 1000  # importance samples for the final log p(x) estimate; 0 = skip
    iwae_n: int = 0  # test examples for it; 0 = all
    umap: bool = True  # store a 2-D UMAP of the test means (for z_dim > 2)
    keep_state: bool = False  # keep optimizer/RNG state in the final file (bigger, resumable)
    progress: bool = True

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        self.image_size = tuple(int(s) for s in self.image_size)
        if self.lr_schedule not in ("constant", "cosine", "exponential"):
            raise ValueError(f"lr_schedule must be constant, cosine or exponential, got {self.lr_schedule!r}")
        if self.matmul_precision not in ("highest", "high", "medium"):
            raise ValueError(f"matmul_precision must be highest, high or medium, got {self.matmul_precision!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.n_samples < 1:
            raise ValueError("epochs, batch_size and n_samples must be >= 1")

    def default_likelihood(self) -> str:
        return self.likelihood or ("gaussian" if self.dataset == "frey" else "bernoulli")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["image_size"] = list(self.image_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


# --- pieces of the loop, kept small and pure ---------------------------------------------------

def lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning rate after ``step`` optimizer steps (a pure function, so resume needs no state)."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    total = cfg.epochs * steps_per_epoch
    if cfg.lr_schedule == "cosine":
        t = min(step / max(total, 1), 1.0)
        return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * t))
    return max(cfg.lr * cfg.lr_gamma ** (step / steps_per_epoch), cfg.lr_min)


def beta_at(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """KL weight with linear warm-up (Bowman et al. 2016; Sonderby et al. 2016)."""
    if cfg.kl_warmup_epochs <= 0:
        return cfg.beta
    return cfg.beta * min(1.0, step / (cfg.kl_warmup_epochs * steps_per_epoch))


def to_model_input(x_uint8: torch.Tensor) -> torch.Tensor:
    """(N, H, W) uint8 -> (N, H*W) float32 in [0, 1]."""
    return x_uint8.reshape(x_uint8.shape[0], -1).to(torch.float32).div_(255.0)


def binarize_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Dynamic binarisation: each pixel ~ Bernoulli(grey level), fresh every time it is seen.
    ``u < x`` with u ~ U(0, 1) is exactly Bernoulli(x) and, on the CPU, three times faster than
    ``torch.bernoulli`` with a generator (measured in bench/throughput.py's profile: 0.37 vs
    1.1 ms per 128x784 batch, a quarter of a training step)."""
    # ceil(x - u) is 1 where u < x and 0 (or -0.0) elsewhere: the same draw as (u < x).float()
    # without a bool tensor and a dtype conversion on the hot path.
    return torch.rand(x.shape, generator=generator, dtype=x.dtype).neg_().add_(x).ceil_()


def binarized_test_set(x: torch.Tensor) -> torch.Tensor:
    """The one fixed stochastic binarisation of a grey test set (N, D) used for reporting."""
    g = torch.Generator().manual_seed(TEST_BINARIZE_SEED)
    return torch.bernoulli(x, generator=g)


@torch.no_grad()
def evaluate_elbo(model: VAE, x: torch.Tensor, batch: int = 2000, seed: int = 0) -> dict:
    """Test ELBO, reconstruction and KL (nats per example, one eps sample, float32)."""
    g = torch.Generator().manual_seed(seed)
    tot = {"elbo": 0.0, "rec": 0.0, "kl": 0.0}
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch]
        parts = loss_function(xb, model(xb, 1, g))
        for k in tot:
            tot[k] += float(parts[k]) * xb.shape[0]
    return {k: v / x.shape[0] for k, v in tot.items()}


@torch.no_grad()
def encode_all(model: VAE, x: torch.Tensor, batch: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent means and log-variances of ``x`` (N, D): each (N, J)."""
    mus, lvs = [], []
    for i in range(0, x.shape[0], batch):
        mu, lv = model.encode(x[i : i + batch])
        mus.append(mu)
        lvs.append(lv)
    return torch.cat(mus), torch.cat(lvs)


def umap_embedding(mu: torch.Tensor, seed: int = 42) -> torch.Tensor:
    """2-D UMAP of latent means (N, J) -> (N, 2) float32; the means themselves when J <= 2."""
    if mu.shape[1] <= 2:
        out = mu if mu.shape[1] == 2 else torch.cat([mu, torch.zeros_like(mu)], 1)
        return out.to(torch.float32).clone()
    import umap  # heavy (numba); imported only when needed

    reducer = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=seed)
    return torch.from_numpy(reducer.fit_transform(mu.numpy())).to(torch.float32)


def _optimizer(model: VAE, lr: float) -> torch.optim.Adam:
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):  # fused kernels unavailable on this build
        return torch.optim.Adam(model.parameters(), lr=lr)


def _pack_state(opt: torch.optim.Adam, gen: torch.Generator, perm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Optimizer moments, RNG state and the current permutation as plain tensors (no pickle)."""
    st: dict[str, torch.Tensor] = {"rng": gen.get_state(), "perm": perm}
    for i, s in opt.state_dict()["state"].items():
        for k, v in s.items():
            st[f"optim.{i}.{k}"] = torch.as_tensor(v).clone()
    return st


def _unpack_state(opt: torch.optim.Adam, gen: torch.Generator, st: dict[str, torch.Tensor]) -> torch.Tensor:
    gen.set_state(st["rng"])
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in st.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v.clone()
    sd["state"] = state
    opt.load_state_dict(sd)
    return st["perm"]


class _StopFlag:
    """First Ctrl-C asks the loop to stop at the next batch boundary; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._old = None

    def __enter__(self) -> _StopFlag:
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no signal handling, Ctrl-C not expected
            self._old = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nInterrupted: saving a resumable checkpoint after this batch (Ctrl-C again to abort)",
              file=sys.stderr)

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


# --- the run ------------------------------------------------------------------------------------

def train(cfg: TrainConfig, resume: bool = False,
          callback: Callable[[int], bool | None] | None = None) -> Path:
    """Fit a VAE and write its checkpoint to ``cfg.out``; returns the path.

    ``resume=True`` continues from the resumable checkpoint at ``cfg.out`` bit-for-bit.
    ``callback(step)`` is called after every optimizer step; returning True requests a stop
    exactly as Ctrl-C does (a resumable checkpoint is written and the function returns)."""
    from trainer.data import load_dataset  # keeps `import trainer.train` light

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # Denormal floats (tiny gradients late in training) are very slow on x86; flush them to zero.
    torch.set_flush_denormal(True)
    out = Path(cfg.out)
    t_start = time.perf_counter()

    ds = load_dataset(cfg.dataset, cfg.image_folder if cfg.dataset == "folder" else cfg.data_dir,
                      **({"download": cfg.download} if cfg.dataset != "folder" else {"image_size": cfg.image_size}))
    likelihood = cfg.default_likelihood()
    mcfg = VAEConfig(image_shape=ds.image_shape, hidden=cfg.hidden, z_dim=cfg.z_dim,
                     activation=cfg.activation, likelihood=likelihood, min_logvar=cfg.min_logvar)
    binarize = cfg.binarize and likelihood == "bernoulli"
    x_train = to_model_input(ds.train_x)
    x_test_grey = to_model_input(ds.test_x)
    x_test = binarized_test_set(x_test_grey) if binarize else x_test_grey

    torch.manual_seed(cfg.seed)
    model = VAE(mcfg)
    opt = _optimizer(model, cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = x_train.shape[0]
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    history: list[dict] = []
    epoch, batch_idx, step, prev_seconds = 0, 0, 0, 0.0
    sums = torch.zeros(3, dtype=torch.float64)  # running (elbo, rec, kl) sums of this epoch
    perm = None

    if resume:
        try:
            ck = load_checkpoint(out, with_state=True)
        except CheckpointError as e:
            raise CheckpointError(f"cannot resume: {e}") from None
        if ck.state is None:
            raise CheckpointError(f"cannot resume: {out} holds no training state (the run finished)")
        if ck.config != mcfg:
            raise CheckpointError(f"cannot resume: {out} was trained with a different model config "
                                  f"({ck.config} vs {mcfg})")
        model.load_state_dict(ck.model.state_dict())
        for p in model.parameters():
            p.requires_grad_(True)
        perm = _unpack_state(opt, gen, ck.state)
        if perm.numel() == 0:  # stopped at an epoch boundary: the next epoch draws a new permutation
            perm = None
        r = ck.meta["resume"]
        epoch, batch_idx, step = r["epoch"], r["batch_idx"], r["step"]
        sums = torch.tensor(r["sums"], dtype=torch.float64)
        history = ck.meta.get("history", [])
        prev_seconds = ck.meta.get("wall_time_s", 0.0)
        print(f"Resuming {out} at epoch {epoch + 1}, batch {batch_idx}/{steps_per_epoch}", file=sys.stderr)

    base_meta = {
        "name": cfg.name or out.stem,
        "title": cfg.title or f"{ds.name} VAE, {cfg.z_dim}-D latent",
        "dataset": ds.name,
        "image_shape": list(ds.image_shape),
        "likelihood": likelihood,
        "binarized": binarize,
        "label_names": ds.label_names,
        "provenance": ds.provenance,
        "train_config": cfg.to_dict(),
        "n_train": int(n),
        "n_test": int(x_test.shape[0]),
    }

    def save_resumable(perm_now: torch.Tensor) -> None:
        meta = dict(base_meta, history=history, wall_time_s=prev_seconds + time.perf_counter() - t_start,
                    resume={"epoch": epoch, "batch_idx": batch_idx, "step": step, "sums": sums.tolist()})
        save_checkpoint(out, model, meta, state=_pack_state(opt, gen, perm_now))

    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if cfg.bf16 else _NullContext()
    stopped = False
    with _StopFlag() as stop, matmul_precision(cfg.matmul_precision):
        while epoch < cfg.epochs and not stopped:
            if perm is None:
                perm = torch.randperm(n, generator=gen)
                batch_idx, sums = 0, torch.zeros(3, dtype=torch.float64)
            model.train()
            t_epoch = time.perf_counter()
            bar = _progress(cfg, epoch, steps_per_epoch, batch_idx)
            while batch_idx < steps_per_epoch:
                idx = perm[batch_idx * cfg.batch_size : (batch_idx + 1) * cfg.batch_size]
                xb = x_train[idx]
                if binarize:
                    xb = binarize_batch(xb, gen)
                for group in opt.param_groups:
                    group["lr"] = lr_at(cfg, step, steps_per_epoch)
                with autocast:
                    out_b = model(xb, cfg.n_samples, gen)
                if cfg.bf16:
                    out_b = {k: (v.float() if v is not None else None) for k, v in out_b.items()}
                parts = loss_function(xb, out_b, beta_at(cfg, step, steps_per_epoch))
                loss_value = parts["loss"].item()
                if not math.isfinite(loss_value):
                    raise TrainingDiverged(
                        f"loss became {loss_value} at epoch {epoch + 1}, batch {batch_idx}; "
                        f"stopped. The last good checkpoint ({out}, end of epoch {epoch}) is kept. "
                        f"Try a lower --lr or a higher --min-logvar.")
                opt.zero_grad(set_to_none=True)
                parts["loss"].backward()
                opt.step()
                with torch.no_grad():
                    sums.add_(torch.stack((parts["elbo"], parts["rec"], parts["kl"])), alpha=xb.shape[0])
                batch_idx += 1
                step += 1
                if bar is not None:
                    bar.update(1)
                    if batch_idx % 25 == 0 or batch_idx == steps_per_epoch:
                        seen = min(batch_idx * cfg.batch_size, n)
                        bar.set_postfix(elbo=f"{float(sums[0]) / seen:.2f}")
                if callback is not None and callback(step):
                    stop.requested = True
                if stop.requested and batch_idx < steps_per_epoch:
                    stopped = True
                    break
            train_seconds = time.perf_counter() - t_epoch
            if bar is not None:
                bar.close()
            if stopped:
                save_resumable(perm)
                print(f"Saved resumable checkpoint {out}; continue with --resume", file=sys.stderr)
                return out
            model.eval()
            with matmul_precision("highest"):
                test = evaluate_elbo(model, x_test, seed=cfg.seed + epoch)
            train_means = (sums / n).tolist()
            history.append({
                "epoch": epoch + 1, "train_elbo": train_means[0], "train_rec": train_means[1],
                "train_kl": train_means[2], "test_elbo": test["elbo"], "test_rec": test["rec"],
                "test_kl": test["kl"], "lr": lr_at(cfg, step, steps_per_epoch),
                "beta": beta_at(cfg, step, steps_per_epoch), "seconds": train_seconds,
            })
            if not all(math.isfinite(v) for v in (*train_means, test["elbo"])):
                raise TrainingDiverged(f"non-finite ELBO after epoch {epoch + 1}; the last good checkpoint "
                                       f"({out}) is kept. Try a lower --lr.")
            if cfg.progress:
                print(f"epoch {epoch + 1}/{cfg.epochs}: train ELBO {train_means[0]:.2f}, "
                      f"test ELBO {test['elbo']:.2f} (rec {test['rec']:.2f}, KL {test['kl']:.2f})",
                      file=sys.stderr)
            epoch += 1
            perm = None
            batch_idx = 0
            save_resumable(torch.empty(0, dtype=torch.int64))
            if stop.requested:
                print(f"Saved resumable checkpoint {out}; continue with --resume", file=sys.stderr)
                return out

    with matmul_precision("highest"):
        return finalize(cfg, model, base_meta, history, x_test, x_test_grey, ds.test_y,
                        prev_seconds + time.perf_counter() - t_start, opt, gen)


def finalize(cfg: TrainConfig, model: VAE, base_meta: dict, history: list[dict], x_test: torch.Tensor,
             x_test_grey: torch.Tensor, test_y: torch.Tensor, wall_time_s: float,
             opt: torch.optim.Adam, gen: torch.Generator) -> Path:
    """Final evaluation and the app's arrays, then the (small) final checkpoint."""
    model.eval()
    t0 = time.perf_counter()
    metrics = {"test_" + k: v for k, v in evaluate_elbo(model, x_test, seed=cfg.seed + 10_000).items()}
    metrics["n_test"] = int(x_test.shape[0])
    if cfg.iwae_k > 0:
        sub = x_test[: cfg.iwae_n] if cfg.iwae_n else x_test
        ll = iwae_log_likelihood_batched(model, sub, cfg.iwae_k, seed=cfg.seed + 20_000)
        metrics.update(test_iwae_ll=float(ll.mean()), iwae_k=cfg.iwae_k, iwae_n=int(sub.shape[0]))
    mu, logvar = encode_all(model, x_test_grey)
    kl_dim = kl_divergence(mu, logvar).mean(0)
    emb = umap_embedding(mu) if (cfg.umap or mu.shape[1] <= 2) else mu[:, :2].clone()
    arrays = {
        "test_mu": mu.float(), "test_logvar": logvar.float(), "test_labels": test_y.to(torch.int64),
        "test_embedding": emb, "test_index": torch.arange(mu.shape[0], dtype=torch.int64),
    }
    meta = dict(base_meta, history=history, metrics=metrics, kl_per_dim=kl_dim.tolist(),
                embedding="umap" if mu.shape[1] > 2 and cfg.umap else "latent",
                wall_time_s=wall_time_s, eval_time_s=time.perf_counter() - t0,
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                torch_version=torch.__version__)
    state = _pack_state(opt, gen, torch.empty(0, dtype=torch.int64)) if cfg.keep_state else None
    if state is not None:
        meta["resume"] = {"epoch": cfg.epochs, "batch_idx": 0, "step": -1, "sums": [0.0, 0.0, 0.0]}
    path = save_checkpoint(cfg.out, model, meta, arrays=arrays, state=state)
    if cfg.progress:
        print(json.dumps(metrics), file=sys.stderr)
    return path


def iwae_log_likelihood_batched(model: VAE, x: torch.Tensor, k: int, seed: int = 0, batch: int = 100,
                                progress: bool = False) -> torch.Tensor:
    """Importance-weighted log p(x) per example over a large set, in batches: (N, D) -> (N,)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    rng = range(0, x.shape[0], batch)
    if progress:
        from tqdm import tqdm

        rng = tqdm(rng, desc=f"log p(x), k={k}", unit="batch", file=sys.stderr)
    for i in rng:
        out.append(iwae_log_likelihood(model, x[i : i + batch], k=k, chunk=min(k, 250), generator=g))
    return torch.cat(out)


def _progress(cfg: TrainConfig, epoch: int, total: int, initial: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                file=sys.stderr, leave=False, mininterval=0.5)


@contextlib.contextmanager
def matmul_precision(precision: str):
    """Temporarily set torch's float32 matmul precision (restored afterwards)."""
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
