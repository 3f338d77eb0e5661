"""Training as a function: ``train(TrainConfig(...)) -> Path`` of the written checkpoint.

``TrainConfig.kind`` picks the model (``trainer/model.py``): a VAE, or with the same network a
plain (ae) or denoising (dae) autoencoder. The loop is the same; an autoencoder minimises its
reconstruction error (:func:`trainer.model.objective`), a DAE on inputs corrupted afresh every
step by the run's own generator (``trainer/corruption.py``; so a resumed run continues bit-for-bit),
and its numbers are reconstruction errors instead of an ELBO and log p(x).

The loop follows the paper's AEVB algorithm (Kingma & Welling 2013, Algorithm 1): minibatch M,
L samples of eps per data point, gradient of the (beta-weighted) ELBO, Adam. What makes it fast:
the whole dataset lives in memory as one float tensor and each step gathers a batch with one
index op (no DataLoader, no per-sample Python), the Bernoulli likelihood uses logits, Adam is
fused, and the float32 matmuls may use bfloat16 products with float32 accumulation (oneDNN's
"medium" float32 matmul precision, on CPUs with AMX/AVX512-BF16; measured in
``bench/throughput.py``). Every reported number (test ELBO, log p(x)) is computed in exact float32
by ``trainer/evaluate.py``.

What makes it safe: the config (every field's range, :mod:`trainer.config`) and the output
folder (writable, stale temporary files of this output removed) are checked before any data is
loaded; every write is atomic; a resumable checkpoint (weights, Adam moments, RNG state, the
epoch's permutation and position) is written at the end of every epoch and on Ctrl-C or SIGTERM;
``resume=True`` continues bit-for-bit; a non-finite loss stops the run with a message and leaves
the last good checkpoint in place.

A run, in order (:func:`train`): checks, the resumable checkpoint if resuming, the data
(:class:`TrainData`; these first steps are in :mod:`trainer.run_setup`), then :class:`_Run`: per
epoch :meth:`_Run.train_epoch` (the hot loop) and :meth:`_Run.end_epoch` (the per-epoch record
and a resumable save), finally :meth:`_Run.finalize`.

Where it runs (:mod:`trainer.distributed`): ``--device`` picks the CPU or a CUDA GPU; under
``torchrun`` every process runs this same loop on its share of each global batch
(DistributedDataParallel) and only rank 0 reads and writes checkpoints and shows progress.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from trainer.checkpoint import Checkpoint, save_checkpoint
from trainer.config import ConfigError, TrainConfig
from trainer.corruption import corrupt
from trainer.distributed import Placement, StopFlag, placement
from trainer.evaluate import (
    autoencoder_metrics,
    evaluate_elbo,
    evaluate_reconstruction,
    iwae_log_likelihood_batched,
    latent_arrays,
    matmul_precision,
)
from trainer.model import KIND_NAMES, VAE, VAEConfig, objective
from trainer.run_setup import (
    RunState,
    TrainData,
    load_train_data,
    make_optimizer,
    model_config,
    pack_state,
    prepare_output,
    read_resumable,
    unpack_state,
)


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


def binarize_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Dynamic binarisation: each pixel ~ Bernoulli(grey level), fresh every time it is seen.
    ``u < x`` with u ~ U(0, 1) is exactly Bernoulli(x) and, on the CPU, three times faster than
    ``torch.bernoulli`` with a generator (measured in bench/throughput.py's profile: 0.37 vs
    1.1 ms per 128x784 batch, a quarter of a training step)."""
    # ceil(x - u) is 1 where u < x and 0 (or -0.0) elsewhere: the same draw as (u < x).float()
    # without a bool tensor and a dtype conversion on the hot path.
    return torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device).neg_().add_(x).ceil_()


# --- the run ------------------------------------------------------------------------------------

def train(cfg: TrainConfig, resume: bool = False,
          callback: Callable[[int], bool | None] | None = None) -> Path:
    """Fit a VAE and write its checkpoint to ``cfg.out``; returns the path.

    ``resume=True`` continues from the resumable checkpoint at ``cfg.out`` bit-for-bit.
    ``callback(step)`` is called after every optimizer step; returning True requests a stop
    exactly as Ctrl-C does (a resumable checkpoint is written and the function returns).
    A bad config value or an unwritable output folder raises ConfigError before any data is read.
    Under torchrun every process calls it (:mod:`trainer.distributed`); all return the path."""
    cfg.validate()
    with placement(cfg.device) as place, _denormals_flushed():
        return _train(cfg, resume, callback, place)


@contextlib.contextmanager
def _denormals_flushed():
    """Denormal floats (tiny gradients late in training) are very slow on x86: flushed to zero while
    training, then back to torch's default. The flag is the CPU's, for the whole process: left on, it
    made Python's own subnormal floats 0 after a run (math.nextafter(0.0, 1.0) == 0.0)."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _train(cfg: TrainConfig, resume: bool, callback, place: Placement) -> Path:
    if cfg.batch_size < place.world:
        raise ConfigError("batch_size", f"is the global batch, so at least the number of processes ({place.world})",
                          cfg.batch_size)
    mcfg = model_config(cfg)

    def checked_output() -> tuple[Path, Checkpoint | None]:  # on rank 0 only, which writes
        path = prepare_output(cfg.out)
        return path, (read_resumable(path, mcfg) if resume else None)

    out, resumed = place.from_main(checked_output)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    with place.local_main_first():  # a --download happens once per machine
        data = load_train_data(cfg, mcfg, place.is_main)
    run = _Run(cfg, mcfg, data, out, t_start, place)
    if resumed is not None:
        run.restore(resumed)
    with StopFlag(announce=place.is_main) as stop, matmul_precision(cfg.matmul_precision):
        while run.state.epoch < cfg.epochs:
            stopped, train_seconds = run.train_epoch(stop, callback)
            if not stopped:
                run.end_epoch(train_seconds)
            if stopped or place.agree(stop.requested):
                if place.is_main:
                    print(f"Saved resumable checkpoint {out}; continue with --resume", file=sys.stderr)
                return out
    # Free DDP's reducer (it holds the process group) while every peer is still connected, not at
    # interpreter exit: one rank once aborted at exit ("terminate called without an active exception").
    run.net = run.model
    gc.collect()
    place.close()  # training is over: the other processes leave, the main one evaluates and writes
    if not place.is_main:
        return out
    with matmul_precision("highest"):
        return run.finalize()


class _Run:
    """One training run's model, optimizer, RNG and :class:`RunState`, and what it writes."""

    def __init__(self, cfg: TrainConfig, mcfg: VAEConfig, data: TrainData, out: Path, t_start: float,
                 place: Placement) -> None:
        self.cfg, self.data, self.out, self.t_start, self.place = cfg, data, out, t_start, place
        torch.manual_seed(cfg.seed)
        self.model = VAE(mcfg).to(place.device)
        self.net = place.wrap(self.model)  # what a training step calls: the model, or DDP around it
        self.opt = make_optimizer(self.model, cfg.lr)
        self.gen = place.generator(cfg.seed)
        self.gather, self.index_device = place.batch_source(data.x_train)
        data.x_test, data.x_test_grey = place.to_device(data.x_test), place.to_device(data.x_test_grey)
        self.n = data.x_train.shape[0]
        self.steps_per_epoch = math.ceil(self.n / cfg.batch_size)
        self.state = RunState()
        self.autocast = (torch.autocast(place.device.type, dtype=torch.bfloat16) if cfg.bf16
                         else contextlib.nullcontext())
        self.vae = mcfg.has_prior
        # A DAE's C(x~|x): (kind, level); None for a VAE or a plain autoencoder.
        self.corruption = cfg.default_corruption() if cfg.kind == "dae" else None
        what = "VAE" if self.vae else KIND_NAMES[cfg.kind]
        self.base_meta = {
            "name": cfg.name or out.stem,
            "title": cfg.title or f"{data.meta['dataset']} {what}, {cfg.z_dim}-D latent",
            **data.meta,
            **({"corruption": {"kind": self.corruption[0], "level": self.corruption[1]}} if self.corruption else {}),
            "train_config": cfg.to_dict(),
            "n_train": int(self.n),
            "n_test": int(data.x_test.shape[0]),
        }

    def restore(self, ck: Checkpoint) -> None:
        """Continue from a resumable checkpoint (see :func:`trainer.run_setup.read_resumable`)."""
        self.model.load_state_dict(ck.model.state_dict())
        r, place = ck.meta["resume"], self.place
        state = dict(ck.state, rng=place.rng_state(ck.state["rng"], self.cfg.seed + r["step"]))
        perm = unpack_state(self.opt, self.gen, state)
        sums = torch.tensor(r["sums"], dtype=torch.float64, device=place.device)
        self.state = RunState(
            epoch=r["epoch"], batch_idx=r["batch_idx"], step=r["step"],
            # the saved sums are over all processes; each holds its share, summed at the epoch's end
            sums=sums / place.world if place.world > 1 else sums,
            # stopped at an epoch boundary (empty permutation): the next epoch draws a new one
            perm=perm.to(self.index_device) if perm.numel() else None,
            history=ck.meta.get("history", []), prev_seconds=ck.meta.get("wall_time_s", 0.0))
        if not place.is_main:
            return
        print(f"Resuming {self.out} at epoch {r['epoch'] + 1}, batch {r['batch_idx']}/{self.steps_per_epoch}",
              file=sys.stderr)

    def save_resumable(self, perm: torch.Tensor) -> None:
        if not self.place.is_main:  # one writer
            return
        st = self.state
        meta = dict(self.base_meta, history=st.history,
                    wall_time_s=st.prev_seconds + time.perf_counter() - self.t_start,
                    resume={"epoch": st.epoch, "batch_idx": st.batch_idx, "step": st.step, "sums": st.sums.tolist()})
        save_checkpoint(self.out, self.model, meta, state=pack_state(self.opt, self.gen, perm))

    def train_epoch(self, stop: StopFlag, callback) -> tuple[bool, float]:
        """Run the current epoch (or its rest, after a resume). Returns (stopped mid-epoch, seconds
        in the loop); a stop mid-epoch has already written its resumable checkpoint."""
        cfg, st, opt, gen, place = self.cfg, self.state, self.opt, self.gen, self.place
        gather, binarize, spe, n, bs = self.gather, self.data.binarize, self.steps_per_epoch, self.n, cfg.batch_size
        if st.perm is None:
            st.perm = torch.randperm(n, generator=gen, device=gen.device).to(self.index_device)
            st.batch_idx, st.sums = 0, torch.zeros(3, dtype=torch.float64, device=place.device)
        perm, sums = st.perm, st.sums
        self.net.train()
        t_epoch = time.perf_counter()
        bar = _progress(cfg, st.epoch, spe, st.batch_idx) if place.is_main else None
        stopped = False
        while st.batch_idx < spe:
            # this process's rows of the global batch (all of them in a plain run), its loss weight
            # and the context its noise is drawn in (trainer.distributed.Placement.my_rows)
            idx, n_rows, weight, draws = place.my_rows(perm[st.batch_idx * bs : (st.batch_idx + 1) * bs], gen)
            xb = gather(idx)
            with draws:
                if binarize:
                    xb = binarize_batch(xb, gen)
                for group in opt.param_groups:
                    group["lr"] = lr_at(cfg, st.step, spe)
                parts = self._loss(xb, st.step)
            if place.sync_each_step:
                loss_value = parts["loss"].item()
                if not math.isfinite(loss_value):
                    raise self._diverged(f"loss became {loss_value} at epoch {st.epoch + 1}, batch {st.batch_idx}")
            opt.zero_grad(set_to_none=True)
            (parts["loss"] if weight == 1 else parts["loss"] * weight).backward()
            opt.step()
            with torch.no_grad():
                sums.add_(self._tracked(parts), alpha=n_rows)
            st.batch_idx += 1
            st.step += 1
            if bar is not None:
                bar.update(1)
                if st.batch_idx % 25 == 0 or st.batch_idx == spe:
                    seen = min(st.batch_idx * bs, n) / place.world  # this process's share, near enough
                    bar.set_postfix({"elbo" if self.vae else "loss": f"{float(sums[0]) / seen:.2f}"})
            if callback is not None and callback(st.step):
                stop.requested = True
            agreed_stop, non_finite = place.poll(stop.requested, sums, st.batch_idx, spe)
            if non_finite:
                raise self._diverged(f"loss became non-finite at epoch {st.epoch + 1}, by batch {st.batch_idx}")
            if agreed_stop:
                stop.requested = True
                if st.batch_idx < spe:
                    stopped = True
                    break
        train_seconds = time.perf_counter() - t_epoch
        if bar is not None:
            bar.close()
        if stopped:
            place.sum_(sums)
            self.save_resumable(perm)
        return stopped, train_seconds

    def _diverged(self, what: str) -> TrainingDiverged:
        return TrainingDiverged(f"{what}; stopped. The last good checkpoint ({self.out}, end of epoch "
                                f"{self.state.epoch}) is kept. Try a lower --lr or a higher --min-logvar.")

    def _loss(self, xb: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """The objective of a batch and its parts (trainer.model.objective): the negative
        (beta-weighted) ELBO, or an autoencoder's reconstruction error of the clean ``xb`` (from a
        corrupted copy for a DAE: the notes' -E log p(x' = x | z(x~)))."""
        x_in = corrupt(xb, *self.corruption, generator=self.gen) if self.corruption else xb
        with self.autocast:
            out_b = self.net(x_in, self.cfg.n_samples, self.gen)
        if self.cfg.bf16:
            out_b = {k: (v.float() if v is not None else None) for k, v in out_b.items()}
        return objective(self.model.config, xb, out_b, beta_at(self.cfg, step, self.steps_per_epoch))

    def _tracked(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """What an epoch sums (``RunState.sums``): (elbo, rec, kl), or an autoencoder's (loss, 0, 0)."""
        if self.vae:
            return torch.stack((parts["elbo"], parts["rec"], parts["kl"]))
        return torch.stack((parts["loss"], torch.zeros_like(parts["loss"]), torch.zeros_like(parts["loss"])))

    def end_epoch(self, train_seconds: float) -> None:
        """The per-epoch record: the train numbers (summed over processes), and on the main process
        the test numbers in exact float32 and a history row (a non-finite number stops the run);
        then the next epoch starts from a resumable checkpoint."""
        cfg, st, main = self.cfg, self.state, self.place.is_main
        train_means = (self.place.sum_(st.sums) / self.n).tolist()
        row, line = {}, ""
        if main:
            self.model.eval()
            row, line = self._epoch_numbers(train_means)
        if not all(math.isfinite(v) for v in (*train_means, *row.values())):
            raise TrainingDiverged(f"non-finite {'ELBO' if self.vae else 'loss'} after epoch {st.epoch + 1}; the last "
                                   f"good checkpoint ({self.out}) is kept. Try a lower --lr.")
        if main:
            st.history.append({"epoch": st.epoch + 1, **row, "lr": lr_at(cfg, st.step, self.steps_per_epoch),
                               **({"beta": beta_at(cfg, st.step, self.steps_per_epoch)} if self.vae else {}),
                               "seconds": train_seconds})
            if cfg.progress:
                print(f"epoch {st.epoch + 1}/{cfg.epochs}: {line}", file=sys.stderr)
        st.epoch += 1
        st.perm = None
        st.batch_idx = 0
        self.save_resumable(torch.empty(0, dtype=torch.int64))

    def _epoch_numbers(self, train_means: list[float]) -> tuple[dict[str, float], str]:
        """An epoch's train means (see :meth:`_tracked`) and test numbers, as history fields, and
        its progress line. A VAE: ELBO, reconstruction, KL; an autoencoder: its loss (for a DAE
        on test inputs corrupted with seeded draws, so epochs compare)."""
        seed = self.cfg.seed + self.state.epoch
        with matmul_precision("highest"):
            if self.vae:
                t = evaluate_elbo(self.model, self.data.x_test, seed=seed)
                row = {"train_elbo": train_means[0], "train_rec": train_means[1], "train_kl": train_means[2],
                       "test_elbo": t["elbo"], "test_rec": t["rec"], "test_kl": t["kl"]}
                return row, (f"train ELBO {train_means[0]:.2f}, test ELBO {t['elbo']:.2f} "
                             f"(rec {t['rec']:.2f}, KL {t['kl']:.2f})")
            t = evaluate_reconstruction(self.model, self.data.x_test, self.corruption, seed=seed)
        row = {"train_loss": train_means[0], "test_loss": t["loss"]}
        return row, f"train loss {train_means[0]:.3f}, test loss {t['loss']:.3f} (squared error {t['sse']:.3f})"

    def finalize(self) -> Path:
        """Final evaluation and the app's arrays, then the (small) final checkpoint."""
        cfg, data, model = self.cfg, self.data, self.model
        wall_time_s = self.state.prev_seconds + time.perf_counter() - self.t_start
        model.eval()
        t0 = time.perf_counter()
        metrics = self._final_metrics()
        arrays, kl_per_dim, embedding = latent_arrays(model, data.x_test_grey, data.test_y, cfg.umap)
        meta = dict(self.base_meta, history=self.state.history, metrics=metrics,
                    **({"kl_per_dim": kl_per_dim} if kl_per_dim is not None else {}), embedding=embedding,
                    wall_time_s=wall_time_s, eval_time_s=time.perf_counter() - t0,
                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    torch_version=torch.__version__)
        state = pack_state(self.opt, self.gen, torch.empty(0, dtype=torch.int64)) if cfg.keep_state else None
        if state is not None:
            meta["resume"] = {"epoch": cfg.epochs, "batch_idx": 0, "step": -1, "sums": [0.0, 0.0, 0.0]}
        path = save_checkpoint(cfg.out, model, meta, arrays=arrays, state=state)
        if cfg.progress:
            print(json.dumps(metrics), file=sys.stderr)
        return path

    def _final_metrics(self) -> dict:
        """A VAE's test ELBO and importance-weighted log p(x); an autoencoder has neither, and
        gets its reconstruction errors (trainer.evaluate.autoencoder_metrics)."""
        cfg, data, model = self.cfg, self.data, self.model
        if not self.vae:
            return autoencoder_metrics(model, data.x_test, data.x_test_grey, self.corruption, seed=cfg.seed + 10_000)
        metrics = {"test_" + k: v for k, v in evaluate_elbo(model, data.x_test, seed=cfg.seed + 10_000).items()}
        metrics["n_test"] = int(data.x_test.shape[0])
        if cfg.iwae_k > 0:
            sub = data.x_test[: cfg.iwae_n] if cfg.iwae_n else data.x_test
            ll = iwae_log_likelihood_batched(model, sub, cfg.iwae_k, seed=cfg.seed + 20_000)
            metrics.update(test_iwae_ll=float(ll.mean()), iwae_k=cfg.iwae_k, iwae_n=int(sub.shape[0]))
        return metrics


def _progress(cfg: TrainConfig, epoch: int, total: int, initial: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                file=sys.stderr, leave=False, mininterval=0.5)
