"""Finding, loading and running the shipped checkpoints, one file's failure never hiding the rest.

The app keeps one :class:`trainer.checkpoint.Checkpoint` per file (cached by the page); these
functions are what it asks of a model: decode latent points into images, encode images, and
what kind of model it is. A VAE has a prior p(z) and so a density p(x); an autoencoder (plain,
``ae``, or denoising, ``dae``) has a deterministic code and neither: views that need p(z) or
p(x) ask :func:`has_prior` and say :func:`no_prior_reason` instead.
Shapes: ``J`` latent size, ``H x W`` image size, ``N`` items.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from explorer.latent import LatentBox, data_box, prior_box
from trainer.checkpoint import Checkpoint, CheckpointError, list_checkpoints, load_checkpoint, read_metadata
from trainer.model import KIND_NAMES, KINDS, count_parameters, kl_divergence

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_DIR_ENV = "VAE_CHECKPOINT_DIR"


def default_checkpoint_dir() -> Path:
    """``$VAE_CHECKPOINT_DIR`` if set, else ``<repo>/checkpoints``."""
    env = os.environ.get(CHECKPOINT_DIR_ENV)
    return Path(env) if env else REPO_ROOT / "checkpoints"


@dataclass(frozen=True)
class ModelEntry:
    """One checkpoint file as the sidebar lists it. ``name`` is the file stem (what the URL
    and session state use); ``error`` is a one-line reason when the file cannot be used (then
    ``title``, ``dataset``, ``z_dim`` may be empty)."""

    path: Path
    name: str
    title: str
    dataset: str
    z_dim: int
    mtime: float
    error: str | None = None
    kind: str = "vae"  # vae | ae | dae (trainer.model.KINDS)

    @property
    def ok(self) -> bool:
        return self.error is None


def _unexpected(path: str | os.PathLike, e: Exception) -> str:
    """One bounded line for an error the reader should not have let out (a bug, not a file's fault)."""
    return " ".join(f"{path}: could not read: {type(e).__name__}: {e}".split())[:300]


def _read_entry(p: Path, mtime: float) -> ModelEntry:
    """The sidebar's entry for one file, from its header (or the reason it cannot be used)."""
    try:
        config, meta = read_metadata(p)
    except CheckpointError as e:
        return ModelEntry(p, p.stem, p.stem, "", 0, mtime, str(e))
    except Exception as e:  # noqa: BLE001 - the reader raises only CheckpointError; never let a file take the page down
        return ModelEntry(p, p.stem, p.stem, "", 0, mtime, _unexpected(p, e))
    # The file stem names the model (unique in a folder, stable in URLs); meta's own
    # name could repeat across copies of a file.
    return ModelEntry(path=p, name=p.stem, title=str(meta.get("title") or meta.get("name") or p.stem),
                      dataset=str(meta.get("dataset") or ""), z_dim=config.z_dim, mtime=mtime,
                      kind=config.kind)


# discover runs on every rerun of the page and a checked header costs a few ms (a 1000-epoch
# history is 0.3 MB of JSON), so entries are kept per file version: path, device, inode, size
# and mtime (an atomic rewrite is a new inode). Entries are immutable; plain dict operations
# are atomic, so sessions' threads may share it.
_ENTRIES: dict[tuple, ModelEntry] = {}
_MAX_ENTRIES = 256


def discover(folder: str | os.PathLike) -> list[ModelEntry]:
    """Every ``*.safetensors`` in ``folder``, read header-only (cheap), sorted by name.

    A file whose header is unusable (or that is not a regular file) becomes an entry with
    ``error`` set instead of raising, so one bad file is reported while the others stay usable."""
    out = []
    for p in list_checkpoints(folder):
        try:
            st = p.stat()
        except OSError:  # a link to nothing, or vanished since the listing: the reader says which
            out.append(_read_entry(p, 0.0))
            continue
        key = (str(p), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        entry = _ENTRIES.get(key)
        if entry is None:
            if len(_ENTRIES) >= _MAX_ENTRIES:
                _ENTRIES.clear()
            entry = _ENTRIES[key] = _read_entry(p, st.st_mtime)
        out.append(entry)
    return out


TEST_ARRAYS = ("test_mu", "test_logvar", "test_labels", "test_embedding", "test_index")


def display_order(entries: list[ModelEntry]) -> list[ModelEntry]:
    """MNIST first, then other datasets; VAEs, then autoencoders, then denoising ones; each by
    latent size: the first is the app's default (the 2-D MNIST VAE when shipped)."""
    return sorted(entries, key=lambda e: (e.dataset != "mnist", e.dataset, KINDS.index(e.kind), e.z_dim, e.name))


def compare_set(entries: list[ModelEntry], current: ModelEntry, n: int = 3) -> list[str]:
    """The models the Compare tab starts with: a VAE, an AE and a DAE of ``current``'s dataset and
    latent size when at least two of those kinds exist there, else of the 2-D latent, else
    ``current`` and the next models of its dataset (at most ``n`` names, in :func:`display_order`)."""
    ok = display_order([e for e in entries if e.ok])
    for z in (current.z_dim, 2):
        pick = {current.kind: current.name} if current.z_dim == z else {}
        for e in ok:
            if e.dataset == current.dataset and e.z_dim == z:
                pick.setdefault(e.kind, e.name)
        if len(pick) >= 2:
            return [pick[k] for k in KINDS if k in pick][:n]
    same = [e.name for e in ok if e.dataset == current.dataset and e.name != current.name]
    return [current.name, *same][:n]


# --- what kind of model ----------------------------------------------------------------------

def kind(ck: Checkpoint) -> str:
    """``vae``, ``ae`` or ``dae`` (files written before kinds existed are VAEs)."""
    return ck.config.kind


def has_prior(ck: Checkpoint) -> bool:
    """True for a VAE: a prior p(z) to sample and judge points by, and a density p(x). False for
    an autoencoder, whose code is deterministic and which defines neither."""
    return ck.config.has_prior


def corruption(ck: Checkpoint) -> str | None:
    """A denoising autoencoder's training corruption, e.g. ``"masking 0.3"``, else None."""
    c = ck.meta.get("corruption")
    return f"{c['kind']} {c['level']:g}" if isinstance(c, dict) and "kind" in c and "level" in c else None


def kind_name(ck: Checkpoint) -> str:
    """``"VAE"``, ``"autoencoder"`` or ``"denoising autoencoder (masking 0.3)"``."""
    c = corruption(ck) if kind(ck) == "dae" else None
    return KIND_NAMES[kind(ck)] + (f" ({c})" if c else "")


def no_prior_reason(ck: Checkpoint, what: str) -> str:
    """One sentence: why ``what`` (e.g. "Prior samples") does not apply to an autoencoder."""
    return (f"{what} would need a prior p(z), and this {KIND_NAMES[kind(ck)]} has none: it is trained only to "
            "reconstruct its input, so it defines neither p(z) nor p(x) (the lecture notes' point).")


def latent_box(ck: Checkpoint) -> LatentBox:
    """Where sliders and grids range: a VAE's prior +-4 SD; an autoencoder's test codes' range
    (1% to 99% per dimension, widened a quarter; the prior's box without test codes)."""
    mu = ck.arrays.get("test_mu")
    if has_prior(ck) or mu is None or mu.ndim != 2 or mu.shape[1] != ck.config.z_dim or mu.shape[0] < 2:
        return prior_box(ck.config.z_dim)
    return data_box(mu.numpy())


def check_arrays(ck: Checkpoint) -> dict[str, str]:
    """Stored test-set arrays that cannot be used: array name -> one-line reason (empty dict
    when all are fine). Without a usable ``test_mu`` none of them is usable.

    The views that need a missing or malformed array say so; the rest of the app works."""
    a, J = ck.arrays, ck.config.z_dim
    mu = a.get("test_mu")
    if mu is None or mu.ndim != 2 or mu.shape[1] != J:
        got = "missing" if mu is None else f"shape {tuple(mu.shape)}"
        msg = (f"{ck.path.name}: test_mu is {got}, expected (N, {J}); "
               "the map, neighbours and dataset points are unavailable")
        return {k: msg for k in TEST_ARRAYS}
    n = mu.shape[0]
    expect = {"test_labels": (n,), "test_embedding": (n, 2), "test_index": (n,)}
    if has_prior(ck):  # an autoencoder's code has no variance: it stores no test_logvar
        expect["test_logvar"] = (n, J)
    problems = {}
    for key, shape in expect.items():
        v = a.get(key)
        if v is None:
            problems[key] = f"{ck.path.name}: no {key} array"
        elif tuple(v.shape) != shape:
            problems[key] = f"{ck.path.name}: {key} has shape {tuple(v.shape)}, expected {shape}"
    return problems


def load(path: str | os.PathLike) -> tuple[Checkpoint | None, str | None]:
    """Load one checkpoint: ``(checkpoint, None)`` or ``(None, one-line error)``; never raises
    for a bad file (the page shows the message in the sidebar). Meta fields dropped on loading
    are in ``checkpoint.warnings``."""
    try:
        return load_checkpoint(path), None
    except CheckpointError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - the reader raises only CheckpointError; never let a file take the page down
        return None, _unexpected(path, e)


@torch.no_grad()
def decode(ck: Checkpoint, z: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Decoded mean images E[x|z] for latent points ``z`` (..., J): float32 (..., H, W) in [0, 1]."""
    z = np.asarray(z, dtype=np.float32)
    J = ck.config.z_dim
    if z.shape[-1] != J:
        raise ValueError(f"decode: {ck.name} has a {J}-D latent, got points of shape {z.shape}")
    lead = z.shape[:-1]
    flat = torch.from_numpy(np.ascontiguousarray(z.reshape(-1, J)))
    parts = [ck.model.decode(flat[i : i + batch]) for i in range(0, max(1, flat.shape[0]), batch)]
    x = torch.cat(parts, 0) if parts else torch.zeros(0, ck.config.x_dim)
    return x.numpy().reshape(*lead, *ck.image_shape).astype(np.float32)


@torch.no_grad()
def encode(ck: Checkpoint, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """q(z|x) for float images (N, H, W) or (H, W) in [0, 1]: ``mu, logvar`` each (N, J) or (J,).
    An autoencoder gives its code as ``mu`` and None for ``logvar``."""
    x = np.asarray(images, dtype=np.float32)
    single = x.ndim == 2
    x = x[None] if single else x
    if tuple(x.shape[1:]) != ck.image_shape:
        raise ValueError(f"encode: {ck.name} takes {ck.image_shape} images, got {tuple(x.shape[1:])}")
    mu, logvar = ck.model.encode(torch.from_numpy(np.ascontiguousarray(x.reshape(x.shape[0], -1))))
    mu, logvar = mu.numpy(), None if logvar is None else logvar.numpy()
    if single:
        return mu[0], None if logvar is None else logvar[0]
    return mu, logvar


def architecture(ck: Checkpoint) -> str:
    """One line, e.g. ``784-400-20 encoder, 20-400-784 decoder, relu, bernoulli likelihood``; an
    autoencoder's starts with its kind and ends with its loss (``autoencoder: ..., squared-error loss``)."""
    c = ck.config
    enc = "-".join(str(s) for s in (c.x_dim, *c.hidden, c.z_dim))
    dec = "-".join(str(s) for s in (c.z_dim, *reversed(c.hidden), c.x_dim))
    loss = f"{c.likelihood} likelihood" if c.has_prior else f"{c.likelihood.replace('_', '-')} loss"
    return ("" if c.has_prior else f"{kind_name(ck)}: ") + f"{enc} encoder, {dec} decoder, {c.activation}, {loss}"


def n_parameters(ck: Checkpoint) -> int:
    """Number of weights in the model (encoder and decoder)."""
    return count_parameters(ck.model)


def kl_per_dim(ck: Checkpoint) -> np.ndarray | None:
    """Mean KL(q(z_j|x) || N(0,1)) per latent dimension on the test set (J,), from the meta if
    the trainer stored it (the reader checked it has J finite numbers), else computed from the
    stored test means and log-variances (N, J) with the trainer's closed form (Appendix B)."""
    stored = ck.meta.get("kl_per_dim")
    if stored is not None:
        return np.asarray(stored, dtype=np.float32)
    mu, lv = ck.arrays.get("test_mu"), ck.arrays.get("test_logvar")
    if mu is None or lv is None or mu.ndim != 2 or mu.shape != lv.shape or mu.shape[-1] != ck.config.z_dim:
        return None
    return kl_divergence(mu, lv).mean(0).numpy().astype(np.float32)
