"""What a training run needs before its first step, in the order :func:`trainer.train.train`
does it: the output checked (:func:`prepare_output`, before any data is read), the model's
config (:func:`model_config`), the resumable checkpoint when resuming (:func:`read_resumable`),
the data (:class:`TrainData`), and the state a resumable checkpoint holds besides the weights
(:class:`RunState`; the optimizer's moments and the RNG as plain tensors: :func:`pack_state`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainer.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from trainer.config import ConfigError, TrainConfig
from trainer.evaluate import eval_inputs
from trainer.memmap_images import BatchInput, model_input
from trainer.model import VAE, VAEConfig

# --- before anything is loaded -------------------------------------------------------------------

def prepare_output(out: str | os.PathLike) -> Path:
    """Check that the checkpoint ``out`` can be written, before any data is loaded: its folder
    exists (or is made) and a file can really be created in it (a probe file, so permissions,
    read-only mounts and a full disk are all caught, also for root, where ``os.access`` says yes).
    Then remove the ``.<name>.*.tmp`` files that interrupted atomic writes of this same output
    left behind (a kill -9 during a save); one output has one writer. Raises ConfigError (--out)."""
    path = Path(out)
    if path.is_dir():
        raise ConfigError("out", "is a folder; name the checkpoint file to write", str(out))
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError("out", f"cannot write in {folder} ({e.strerror or e})", str(out)) from None
    stale = [p for p in folder.glob(f".{glob.escape(path.name)}.*.tmp") if p.is_file()]
    for p in stale:
        with contextlib.suppress(OSError):
            p.unlink()
    if stale:
        print(f"Removed {len(stale)} temporary file(s) of {path} left by an interrupted write", file=sys.stderr)
    return path


def model_config(cfg: TrainConfig) -> VAEConfig:
    """The architecture ``cfg`` asks for; the image shape is known before the data is loaded."""
    from trainer.data import image_shape_of

    return VAEConfig(image_shape=image_shape_of(cfg.dataset, cfg.image_size), hidden=cfg.hidden,
                     z_dim=cfg.z_dim, activation=cfg.activation, likelihood=cfg.default_likelihood(),
                     min_logvar=cfg.min_logvar, kind=cfg.kind)


def read_resumable(out: Path, mcfg: VAEConfig) -> Checkpoint:
    """The resumable checkpoint at ``out`` (weights, state and meta), checked against ``mcfg``."""
    try:
        ck = load_checkpoint(out, with_state=True)
    except CheckpointError as e:
        raise CheckpointError(f"cannot resume: {e}") from None
    if ck.state is None:
        raise CheckpointError(f"cannot resume: {out} holds no training state (the run finished)")
    if ck.config != mcfg:
        raise CheckpointError(f"cannot resume: {out} was trained with a different model config "
                              f"({ck.config} vs {mcfg})")
    return ck


# --- data and state ------------------------------------------------------------------------------

@dataclass
class TrainData:
    """A run's tensors: ``x_train`` (N, D) float32 grey levels in [0, 1] (an image folder: a
    :class:`BatchInput` that reads each batch from the memory-mapped cache); ``x_test`` (M, D) what
    test likelihoods are reported on (the fixed binarisation when ``binarize``); ``x_test_grey``
    (M, D); ``test_y`` (M,); ``meta``: the dataset's part of the checkpoint metadata."""

    x_train: torch.Tensor | BatchInput
    x_test: torch.Tensor
    x_test_grey: torch.Tensor
    test_y: torch.Tensor
    binarize: bool
    meta: dict


def load_train_data(cfg: TrainConfig, mcfg: VAEConfig, main: bool = True) -> TrainData:
    """The run's data; an image folder through its on-disk cache (:mod:`trainer.folder_cache`:
    built once per machine, its progress bar and skipped-file line on the ``main`` process only)."""
    from trainer.data import DataError, DataWarning, load_dataset  # keeps `import trainer.train` light

    with warnings.catch_warnings():
        if not main:
            warnings.simplefilter("ignore", DataWarning)
        ds = load_dataset(cfg.dataset, cfg.data_dir, image_folder=cfg.image_folder, download=cfg.download,
                          image_size=cfg.image_size, cached=True, cache_dir=cfg.cache_dir,
                          progress=cfg.progress and main)
    if tuple(ds.image_shape) != mcfg.image_shape:
        raise DataError(f"{ds.name}: images are {ds.image_shape}, expected {mcfg.image_shape}")
    binarize = cfg.binarize and mcfg.likelihood == "bernoulli"
    x_test, x_test_grey = eval_inputs(ds.test_x, binarize)
    meta = {"dataset": ds.name, "image_shape": list(ds.image_shape), "likelihood": mcfg.likelihood,
            "binarized": binarize, "label_names": ds.label_names, "provenance": ds.provenance}
    return TrainData(model_input(ds.train_x), x_test, x_test_grey, ds.test_y, binarize, meta)


@dataclass
class RunState:
    """Where a run is; with the weights and the optimizer/RNG state, what a resumable checkpoint
    holds. ``sums``: running (elbo, rec, kl) sums of this epoch; ``perm``: this epoch's order of
    the training examples (None between epochs)."""

    epoch: int = 0
    batch_idx: int = 0
    step: int = 0
    sums: torch.Tensor = field(default_factory=lambda: torch.zeros(3, dtype=torch.float64))
    perm: torch.Tensor | None = None
    history: list[dict] = field(default_factory=list)
    prev_seconds: float = 0.0  # wall time of the run's earlier sessions (before --resume)


def make_optimizer(model: VAE, lr: float) -> torch.optim.Adam:
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):  # fused kernels unavailable on this build
        return torch.optim.Adam(model.parameters(), lr=lr)


def pack_state(opt: torch.optim.Adam, gen: torch.Generator, perm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Optimizer moments, RNG state and the current permutation as plain tensors (no pickle)."""
    st: dict[str, torch.Tensor] = {"rng": gen.get_state(), "perm": perm}
    for i, s in opt.state_dict()["state"].items():
        for k, v in s.items():
            st[f"optim.{i}.{k}"] = torch.as_tensor(v).clone()
    return st


def unpack_state(opt: torch.optim.Adam, gen: torch.Generator, st: dict[str, torch.Tensor]) -> torch.Tensor:
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
