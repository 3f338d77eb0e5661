"""What a training run is: :class:`TrainConfig`, one field per ``python -m trainer train`` flag.

Each field carries its flag's help text (``metadata["help"]``) and its valid range
(``metadata`` ``ge`` / ``gt`` / ``le``: bounds on a number, or on each element of a tuple);
``Literal[...]`` types are the flag's choices. :meth:`TrainConfig.validate` checks every field's
type and range in this one place and raises :class:`ConfigError` with a one-line message naming
the field. It runs when a config is made and again when ``train()`` starts, so a bad value is
refused before any data is loaded. Safe to import: no torch, no data access.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Literal

Dataset = Literal["mnist", "frey", "folder"]  # trainer.data.DATASETS
Activation = Literal["relu", "tanh", "softplus", "elu"]  # trainer.model.ACTIVATIONS
Kind = Literal["vae", "ae", "dae"]  # trainer.model.KINDS
Likelihood = Literal["bernoulli", "gaussian", "squared_error"]  # trainer.model.LIKELIHOODS
Corruption = Literal["masking", "gaussian", "salt_pepper"]  # trainer.corruption.CORRUPTIONS
LrSchedule = Literal["constant", "cosine", "exponential"]
MatmulPrecision = Literal["highest", "high", "medium"]  # torch.set_float32_matmul_precision
Device = Literal["auto", "cpu", "cuda"]  # trainer.distributed.resolve_device
# trainer.corruption.DEFAULT_LEVELS, here so that this module stays free of torch (tests check they agree)
_DEFAULT_LEVELS = {"masking": 0.3, "gaussian": 0.3, "salt_pepper": 0.2}
MAX_SEED = 2**62  # seeds leave headroom for the fixed offsets added to them (evaluation draws)


class ConfigError(ValueError):
    """A TrainConfig value out of its range; ``field`` names it, the message is one line."""

    def __init__(self, field_name: str, problem: str, value: object) -> None:
        self.field, self.problem, self.value = field_name, problem, value
        super().__init__(f"{field_name}: {problem}, got {self.shown}")

    @property
    def shown(self) -> str:
        """The refused value as written in messages (its repr, cut to a readable length)."""
        r = repr(self.value)
        return r if len(r) <= 80 else r[:77] + "..."


def _f(default, help: str, **rule):
    """A TrainConfig field: its default, the flag's help text, its range (ge, gt, le) and
    optionally the flag's metavar."""
    return field(default=default, metadata={"help": help, **rule})


@dataclass
class TrainConfig:
    """Everything a run needs. Field names double as ``python -m trainer train`` flags."""

    dataset: Dataset = _f("mnist", "dataset to train on")
    data_dir: str | None = _f(None, "datasets folder (default: $VAE_DATA_DIR, else ../shared/data, else data/)")
    download: bool = _f(False, "download missing MNIST / Frey Face files (checked, written atomically)")
    image_folder: str | None = _f(None, "with --dataset folder: the folder of images (sub-folders are classes)")
    image_size: tuple[int, int] = _f((28, 28), "with --dataset folder: the size images are resized to", ge=1,
                                     metavar=("H", "W"))
    cache_dir: str | None = _f(None, "with --dataset folder: where the folder is decoded once into a memory-mapped "
                               "uint8 cache, rebuilt when its files change (default: $VAE_CACHE_DIR, else "
                               "$XDG_CACHE_HOME/vae-latent-explorer, else ~/.cache/vae-latent-explorer)")
    out: str = _f("runs/model.safetensors", "checkpoint file to write (and to continue with --resume)")
    name: str | None = _f(None, "model name shown in the app (default: the file name of --out)")
    title: str | None = _f(None, "one-line title shown in the app (default: dataset and latent size)")
    # model
    kind: Kind = _f("vae", "vae (Kingma & Welling), ae (deterministic autoencoder) or dae (denoising "
                    "autoencoder: trained to give back x from a corrupted x~)")
    z_dim: int = _f(20, "latent dimensions J", ge=1)
    hidden: tuple[int, ...] = _f((400,), "encoder hidden widths; the decoder mirrors them", ge=1)
    activation: Activation = _f("relu", "hidden-layer activation")
    likelihood: Likelihood | None = _f(None, "decoder p(x|z), or an ae/dae's loss (default: a vae bernoulli for "
                                       "mnist/folder, gaussian for frey; an ae/dae squared_error, ||x - x'||^2)")
    min_logvar: float = _f(-6.0, "Gaussian decoder: floor on the per-pixel log-variance")
    # objective
    beta: float = _f(1.0, "KL weight (beta-VAE); reported ELBOs always use beta = 1", ge=0)
    kl_warmup_epochs: float = _f(0.0, "beta ramps linearly from 0 over this many epochs (0 = off)", ge=0)
    n_samples: int = _f(1, "eps samples per data point (L in the paper)", ge=1)
    binarize: bool = _f(True, "dynamic binarisation: a fresh Bernoulli draw per pixel per step (Bernoulli only)")
    corruption: Corruption | None = _f(None, "dae: the corruption C(x~|x) of the encoder's input (default: masking)")
    corruption_level: float | None = _f(None, "dae: masking or salt_pepper probability, or gaussian noise SD "
                                        "(default: trainer.corruption.DEFAULT_LEVELS: masking 0.3, gaussian 0.3, "
                                        "salt_pepper 0.2)", ge=0)
    # optimisation
    epochs: int = _f(10, "training epochs", ge=1)
    batch_size: int = _f(128, "minibatch size M; under torchrun the global batch: each of the N processes "
                         "trains on M/N of it (shares differ by at most one; M >= N)", ge=1)
    lr: float = _f(1e-3, "Adam learning rate", gt=0)
    lr_schedule: LrSchedule = _f("constant", "learning-rate schedule over the run")
    lr_min: float = _f(1e-5, "cosine: final learning rate; exponential: its floor", ge=0)
    lr_gamma: float = _f(0.99, "exponential: per-epoch learning-rate factor", gt=0, le=1)
    seed: int = _f(0, "random seed (same seed, same result)", ge=0, le=MAX_SEED)
    bf16: bool = _f(False, "autocast forward passes to bfloat16 (CPU or GPU); evaluation stays float32")
    # "medium": bf16 products with float32 accumulation, ~1.15x faster here with the same loss curve.
    matmul_precision: MatmulPrecision = _f("medium", "torch float32 matmul precision while training "
                                           "(highest = exact float32; medium = bf16 products)")
    threads: int = _f(0, "torch CPU threads (0 = torch's default)", ge=0)
    device: Device = _f("auto", "where to train: auto (a CUDA GPU when torch sees one, else the CPU), cpu or "
                        "cuda; under torchrun each process takes GPU LOCAL_RANK")
    # evaluation and what the app needs
    iwae_k: int = _f(1000, "importance samples for the final log p(x) estimate (0 = skip it)", ge=0)
    iwae_n: int = _f(0, "test examples for the log p(x) estimate (0 = all)", ge=0)
    umap: bool = _f(True, "store a 2-D UMAP of the test means for the app's map (for z_dim > 2)")
    keep_state: bool = _f(False, "keep optimizer and RNG state in the final file (bigger, resumable)")
    progress: bool = _f(True, "progress bars and per-epoch lines on stderr")

    def __post_init__(self) -> None:
        for name in ("hidden", "image_size"):  # lists from JSON or argparse
            if isinstance(getattr(self, name), list):
                setattr(self, name, tuple(getattr(self, name)))
        self.validate()
        self.hidden = tuple(int(h) for h in self.hidden)
        self.image_size = tuple(int(s) for s in self.image_size)

    def validate(self) -> None:
        """Check every field's type and range; raise :class:`ConfigError` for the first bad one."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            _check(f.name, hints[f.name], getattr(self, f.name), f.metadata)
        if self.dataset == "folder" and not self.image_folder:
            raise ConfigError("image_folder", "required with dataset 'folder'", self.image_folder)
        if not self.out or self.out.endswith(("/", os.sep)) or os.path.basename(self.out) in (".", ".."):
            raise ConfigError("out", "must be a file path such as runs/model.safetensors", self.out)
        self._validate_kind()

    def _validate_kind(self) -> None:
        """What depends on ``kind`` (trainer.model.KIND_LIKELIHOODS, trainer.corruption's ranges)."""
        lik = self.likelihood
        if self.kind == "vae" and lik == "squared_error":
            raise ConfigError("likelihood", "squared_error is an ae/dae loss; a vae takes bernoulli or gaussian", lik)
        if self.kind != "vae" and lik == "gaussian":
            raise ConfigError("likelihood", f"kind {self.kind} takes squared_error or bernoulli", lik)
        for name in ("corruption", "corruption_level"):
            if self.kind != "dae" and getattr(self, name) is not None:
                raise ConfigError(name, "applies to --kind dae only", getattr(self, name))
        if self.kind == "dae" and self.default_corruption()[0] != "gaussian" and self.default_corruption()[1] > 1:
            raise ConfigError("corruption_level", f"is a probability for {self.default_corruption()[0]}, must be <= 1",
                              self.corruption_level)

    def default_likelihood(self) -> str:
        if self.likelihood:
            return self.likelihood
        if self.kind != "vae":
            return "squared_error"  # the lecture notes' autoencoder objective ||x - x'||^2
        return "gaussian" if self.dataset == "frey" else "bernoulli"

    def default_corruption(self) -> tuple[str, float]:
        """A dae's corruption and level, defaults filled in (trainer.corruption.DEFAULT_LEVELS)."""
        kind = self.corruption or "masking"
        level = self.corruption_level
        return kind, float(_DEFAULT_LEVELS[kind] if level is None else level)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["image_size"] = list(self.image_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def flag(field_name: str) -> str:
    """The command-line flag of a TrainConfig field: ``kl_warmup_epochs`` -> ``--kl-warmup-epochs``."""
    return "--" + field_name.replace("_", "-")


def _check(name: str, t, value, rule) -> None:
    """One field: ``value`` against its type ``t`` and its ``rule`` (ge / gt / le)."""
    args = typing.get_args(t)
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):  # X | None
        if value is None:
            return
        t = next(a for a in args if a is not type(None))
        args, origin = typing.get_args(t), typing.get_origin(t)
    if origin is Literal:
        if not isinstance(value, str) or value not in args:
            raise ConfigError(name, f"must be one of {', '.join(args)}", value)
    elif t is bool:
        if not isinstance(value, bool):
            raise ConfigError(name, "must be true or false", value)
    elif origin is tuple:
        n = None if args[-1] is Ellipsis else len(args)
        if not isinstance(value, tuple) or (n is not None and len(value) != n):
            raise ConfigError(name, f"must be {n if n else 'a list of'} integers", value)
        for v in value:
            try:
                _check_number(name, v, int, rule)
            except ConfigError as e:
                raise ConfigError(name, "every entry " + e.problem, value) from None
    elif t in (int, float):
        _check_number(name, value, t, rule)
    elif t is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(name, "must be a non-empty string", value)
    else:  # a field of a new type: give it a rule here
        raise TypeError(f"TrainConfig.{name}: no validation rule for type {t}")


def _check_number(name: str, value, t, rule) -> None:
    integral = t is int
    kind = numbers.Integral if integral else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        raise ConfigError(name, "must be an integer" if integral else "must be a finite number", value)
    bounds = [(sym, test, rule[op]) for op, (sym, test) in _BOUNDS.items() if op in rule]
    if not all(test(value, b) for _, test, b in bounds):
        what = "an integer" if integral else "a number"
        raise ConfigError(name, f"must be {what} " + " and ".join(f"{sym} {b}" for sym, _, b in bounds), value)


_BOUNDS = {"ge": (">=", operator.ge), "gt": (">", operator.gt), "le": ("<=", operator.le)}
