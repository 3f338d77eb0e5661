"""A small MNIST digit classifier: the judge that scores decoded samples of a generative model.

The Compare tab asks whether decoding draws from N(0, I) gives digits: a classifier trained
once on the MNIST training set says how confidently each decoded image is a digit and which one.
It is a LeNet-style CNN, (B, 28*28) in [0, 1] -> conv 5x5 (8) -> max-pool 2 -> conv 5x5 (16) ->
max-pool 2 -> linear (128) -> linear (10) logits, ReLU between: 37610 weights, a 0.15 MB file.
It is trained with AdamW (cosine schedule) for 4 epochs on the grey-level training images, each
shifted by up to +-2 pixels (a cheap augmentation that makes it less sensitive to where a
decoded digit sits); about 4 CPU minutes.

File format (one safetensors file, never pickle): tensors ``model.<name>`` (float32) and
string metadata ``format`` = :data:`FORMAT_NAME`, ``format_version``, ``config`` (JSON of
:class:`DigitClassifierConfig`) and ``meta`` (JSON: test accuracy, per-epoch history, data
provenance, training time, and the ``sha256`` of config, meta and weights, so a flipped byte
is caught, not silently used). Bad files raise :class:`DigitClassifierError`.

The shipped file lives in ``checkpoints/judges/`` (not ``checkpoints/``, whose ``*.safetensors``
the app lists as models). Train it again with

    python -m trainer.digit_classifier --data-dir ../shared/data    # writes DEFAULT_PATH (or --out PATH)
    python -m trainer.digit_classifier --data-dir ../shared/data --check    # re-measure the test accuracy

In Python::

    from trainer.digit_classifier import load_classifier
    clf = load_classifier()                  # the shipped file
    clf.meta["test_accuracy"]
    probs = clf.probabilities(images)        # images (N, 784) or (N, 28, 28) in [0, 1] -> (N, 10)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from trainer.checkpoint import atomic_write_bytes
from trainer.data import PROJECT_ROOT, load_dataset

FORMAT_NAME = "vae-latent-explorer-digit-classifier"
FORMAT_VERSION = 1
DEFAULT_PATH = PROJECT_ROOT / "checkpoints" / "judges" / "mnist-digit-classifier.safetensors"
MAX_FILE_BYTES = 16 << 20  # refuse bigger files before reading them (the shipped one is 0.15 MB)
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10


class DigitClassifierError(ValueError):
    """A classifier file that cannot be used; the one-line message names the file and what is wrong."""


@dataclass
class DigitClassifierConfig:
    """Architecture (``channels``, ``hidden``) and training recipe of the classifier."""

    channels: tuple[int, int] = (8, 16)
    hidden: int = 128
    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3  # AdamW; cosine-decayed to 0 over the run
    weight_decay: float = 1e-4
    max_shift: int = 2  # augmentation: random translation of up to this many pixels
    seed: int = 0

    def __post_init__(self) -> None:
        # Strict types: a config read from a file must not be coerced into something it did not say.
        ch = tuple(self.channels) if isinstance(self.channels, (list, tuple)) else ()
        if len(ch) != 2 or not all(type(c) is int and c >= 1 for c in ch):
            raise ValueError(f"channels must be two integers >= 1, got {self.channels!r}")
        self.channels = ch
        ints = {"hidden": 1, "epochs": 1, "batch_size": 1, "max_shift": 0, "seed": 0}
        for name, low in ints.items():
            v = getattr(self, name)
            if type(v) is not int or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        if self.max_shift > 4:
            raise ValueError(f"max_shift must be at most 4 pixels, got {self.max_shift}")
        for name in ("lr", "weight_decay"):
            v = getattr(self, name)
            if type(v) not in (int, float) or not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
                raise ValueError(f"{name} must be a finite number (lr > 0, weight_decay >= 0), got {v!r}")

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, d: dict) -> DigitClassifierConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown classifier config keys: {sorted(unknown)}")
        return cls(**d)


def expected_shapes(config: DigitClassifierConfig) -> dict[str, tuple[int, ...]]:
    """The weight shapes :class:`DigitClassifier` has for ``config`` (name -> shape)."""
    (c1, c2), h = config.channels, config.hidden
    return {"conv1.weight": (c1, 1, 5, 5), "conv1.bias": (c1,), "conv2.weight": (c2, c1, 5, 5), "conv2.bias": (c2,),
            "fc1.weight": (h, c2 * 16), "fc1.bias": (h,), "fc2.weight": (N_CLASSES, h), "fc2.bias": (N_CLASSES,)}


class DigitClassifier(nn.Module):
    """LeNet-style CNN: images (B, 784) or (B, 28, 28) in [0, 1] -> logits (B, 10)."""

    def __init__(self, config: DigitClassifierConfig, meta: dict | None = None):
        super().__init__()
        self.config = config
        self.meta = meta or {}
        c1, c2 = config.channels
        self.conv1 = nn.Conv2d(1, c1, 5)  # 28 -> 24, pooled to 12
        self.conv2 = nn.Conv2d(c1, c2, 5)  # 12 -> 8, pooled to 4
        self.fc1 = nn.Linear(c2 * 4 * 4, config.hidden)
        self.fc2 = nn.Linear(config.hidden, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(-1, 1, *IMAGE_SHAPE)
        h = F.max_pool2d(F.relu(self.conv1(h)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return self.fc2(F.relu(self.fc1(h.flatten(1))))

    @torch.no_grad()
    def probabilities(self, images, batch: int = 2000) -> torch.Tensor:
        """Class probabilities (N, 10) of images (N, 784) or (N, 28, 28), floats in [0, 1] or uint8."""
        x = torch.as_tensor(images)
        if x.ndim not in (2, 3) or x.shape[1:].numel() != IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
            raise ValueError(f"expected MNIST images (N, 784) or (N, 28, 28), got shape {tuple(x.shape)}")
        x = x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)
        was_training = self.training
        self.eval()
        out = torch.cat([F.softmax(self(x[i : i + batch]), -1) for i in range(0, x.shape[0], batch)]) \
            if x.shape[0] else torch.zeros(0, N_CLASSES)
        self.train(was_training)
        return out

    def predict(self, images) -> torch.Tensor:
        """Predicted digits (N,) int64."""
        return self.probabilities(images).argmax(-1)


# --- training ---------------------------------------------------------------------------------

def _shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image (B, 28, 28) by its own random offset in [-max_shift, max_shift]
    pixels, filling with 0 (zero-pad, then crop a random 28x28 window)."""
    if max_shift == 0:
        return x
    b, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b, 1), generator=gen)
    rows = (dy + torch.arange(h))[:, :, None]  # (B, H, 1)
    cols = (dx + torch.arange(w))[:, None, :]  # (B, 1, W)
    return padded[torch.arange(b)[:, None, None], rows, cols]


@torch.no_grad()
def accuracy(model: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of images (N, 28, 28) uint8 or floats whose predicted digit equals y (N,)."""
    return float((model.predict(x) == torch.as_tensor(y)).to(torch.float64).mean())


def fit_classifier(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                   config: DigitClassifierConfig | None = None, progress: bool = False) -> DigitClassifier:
    """Train on ``train_x`` (N, 28, 28) uint8 with digits ``train_y`` (N,); measure on the test
    pair. Same config and data, same weights (seeded init, shuffles and shifts). The returned
    model is in eval mode with ``meta`` holding test accuracy and the per-epoch history."""
    cfg = config or DigitClassifierConfig()
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng():  # seed the init without touching the caller's global RNG
        torch.manual_seed(cfg.seed)
        model = DigitClassifier(cfg)
    x_all = train_x.to(torch.float32) / 255.0
    y_all = torch.as_tensor(train_y, dtype=torch.int64)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(x_all) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    history, t0 = [], time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(x_all), generator=gen)
        total = 0.0
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = F.cross_entropy(model(_shift(x_all[idx], cfg.max_shift, gen)), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        acc = accuracy(model, test_x, test_y)
        history.append({"epoch": epoch + 1, "train_loss": total / len(x_all), "test_accuracy": acc})
        if progress:
            print(f"epoch {epoch + 1}/{cfg.epochs}: {history[-1]} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    model.meta = {"test_accuracy": history[-1]["test_accuracy"], "test_n": int(len(test_x)), "train_n": int(len(x_all)),
                  "history": history, "train_seconds": round(time.perf_counter() - t0, 1)}
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def train_classifier(data_dir: str | os.PathLike | None = None, config: DigitClassifierConfig | None = None,
                     progress: bool = False) -> DigitClassifier:
    """The classifier trained on the MNIST training set of ``data_dir`` (default: the project's
    data folder), its accuracy measured on the official test set; ``meta`` records the data files."""
    ds = load_dataset("mnist", data_dir)
    model = fit_classifier(ds.train_x, ds.train_y, ds.test_x, ds.test_y, config, progress)
    model.meta.update({"dataset": "mnist", "provenance": ds.provenance, "torch": torch.__version__})
    return model


# --- the file ---------------------------------------------------------------------------------

def _content_sha256(config: dict, meta: dict, tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of the config, the meta (less this field) and the weights: any change to what
    the file says, not only to its bytes' layout, changes it."""
    h = hashlib.sha256()
    h.update(json.dumps(config, sort_keys=True).encode())
    h.update(json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode())
    for k in sorted(tensors):
        h.update(k.encode())
        h.update(tensors[k].contiguous().numpy().tobytes())
    return h.hexdigest()


def save_classifier(path: str | os.PathLike, model: DigitClassifier) -> Path:
    """Write the classifier atomically (weights, config, meta with the weights' sha256)."""
    tensors = {f"model.{k}": v.detach().cpu().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    config = model.config.to_dict()
    meta = {**model.meta, "sha256": _content_sha256(config, model.meta, tensors)}
    metadata = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION),
                "config": json.dumps(config), "meta": json.dumps(meta)}
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))
    return Path(path)


def read_classifier_metadata(path: str | os.PathLike = DEFAULT_PATH) -> tuple[DigitClassifierConfig, dict]:
    """Config and ``meta`` (e.g. ``meta["test_accuracy"]``) from the header only (cheap)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise DigitClassifierError(f"{path}: no such classifier file") from None
    if size > MAX_FILE_BYTES:
        raise DigitClassifierError(f"{path}: {size} bytes, more than a classifier file can be ({MAX_FILE_BYTES})")
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise DigitClassifierError(f"{path}: not a readable safetensors file (truncated or corrupt?): {e}") from None
    if md.get("format") != FORMAT_NAME:
        raise DigitClassifierError(f"{path}: not a {FORMAT_NAME} file (format={md.get('format')!r})")
    if md.get("format_version") != str(FORMAT_VERSION):
        raise DigitClassifierError(
            f"{path}: format version {md.get('format_version')!r}, this program reads {FORMAT_VERSION}")
    try:
        config = DigitClassifierConfig.from_dict(json.loads(md["config"]))
        meta = json.loads(md["meta"])
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
            raise ValueError("meta must be an object with a sha256")
    except (KeyError, ValueError, TypeError) as e:
        raise DigitClassifierError(f"{path}: bad config or metadata in the header: {e}") from None
    return config, meta


def load_classifier(path: str | os.PathLike = DEFAULT_PATH) -> DigitClassifier:
    """Load and verify a classifier file; the model comes back in eval mode on the CPU.

    Raises :class:`DigitClassifierError` for a missing, oversized, truncated or corrupt file, a
    foreign or newer format, weights that do not fit the config or are not finite, or content
    (config, meta, weights) whose sha256 differs from the one recorded when it was written."""
    path = Path(path)
    config, meta = read_classifier_metadata(path)
    try:
        tensors = st_load(path.read_bytes())
    except (SafetensorError, OSError, ValueError) as e:
        raise DigitClassifierError(f"{path}: could not read the tensors (truncated or corrupt?): {e}") from None
    # Shapes are checked against the config before a module is built, so a config that asks
    # for huge layers never allocates (the tensors themselves are bounded by MAX_FILE_BYTES).
    expected = {f"model.{k}": s for k, s in expected_shapes(config).items()}
    bad = sorted(set(expected) ^ set(tensors)) + sorted(
        f"{k} {tuple(v.shape)}/{v.dtype}" for k, v in tensors.items()
        if k in expected and (tuple(v.shape) != expected[k] or v.dtype != torch.float32))
    if bad:
        raise DigitClassifierError(f"{path}: weights do not fit the config: {', '.join(bad)[:300]}")
    if _content_sha256(config.to_dict(), meta, tensors) != meta["sha256"]:
        raise DigitClassifierError(f"{path}: the content's sha256 differs from the recorded one (corrupt file)")
    if not all(bool(torch.isfinite(v).all()) for v in tensors.values()):
        raise DigitClassifierError(f"{path}: non-finite weights")
    model = DigitClassifier(config, meta)
    model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items()}, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.digit_classifier",
                                description="Train (or check) the MNIST digit classifier that scores decoded samples.")
    p.add_argument("--data-dir", default=None, help="datasets folder (default: $VAE_DATA_DIR or ../shared/data)")
    p.add_argument("--out", default=str(DEFAULT_PATH), help="where to write (or, with --check, read) the file")
    p.add_argument("--check", action="store_true", help="load --out and re-measure its MNIST test accuracy")
    p.add_argument("--epochs", type=int, default=DigitClassifierConfig.epochs)
    p.add_argument("--seed", type=int, default=DigitClassifierConfig.seed)
    args = p.parse_args(argv)
    try:
        if args.check:
            model = load_classifier(args.out)
            ds = load_dataset("mnist", args.data_dir)
            result = {"stored_test_accuracy": model.meta["test_accuracy"],
                      "measured_test_accuracy": accuracy(model, ds.test_x, ds.test_y)}
        else:
            config = DigitClassifierConfig(epochs=args.epochs, seed=args.seed)
            model = train_classifier(args.data_dir, config, progress=True)
            path = save_classifier(args.out, model)
            result = {"out": str(path), "bytes": path.stat().st_size, **{k: model.meta[k] for k in
                      ("test_accuracy", "test_n", "train_n", "train_seconds")}}
    except (DigitClassifierError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
