"""The checkpoint format: one self-describing safetensors file per model. Never pickle.

Layout of a file (format ``vae-latent-explorer``, version :data:`FORMAT_VERSION`):

- tensors ``model.<name>``: the VAE's ``state_dict`` (float32).
- tensors ``arrays.<name>``: what the app needs to open instantly and offline, e.g.
  ``test_mu`` / ``test_logvar`` (N, J) latent means and log-variances of the test set,
  ``test_labels`` (N,), ``test_embedding`` (N, 2) a 2-D UMAP of ``test_mu`` (for J = 2 the means
  themselves), ``direction.<name>`` (J,) manipulation directions. No dataset images.
- tensors ``state.<name>`` (only in resumable checkpoints): optimizer moments and RNG states.
- string metadata: ``format``, ``format_version``, ``model_config`` (JSON of
  :class:`trainer.model.VAEConfig`) and ``meta`` (JSON: dataset, image shape, likelihood,
  metrics, training history, data provenance, train config, wall time, ...).

Python API::

    from trainer.checkpoint import load_checkpoint
    ck = load_checkpoint("checkpoints/mnist-z20.safetensors")
    mu, logvar = ck.model.encode(x)          # x: (B, H*W) floats in [0, 1]
    images = ck.model.decode(z)              # z: (B, J) -> (B, H*W) mean images
    samples = ck.model.sample(16)            # (16, H*W) decoded prior draws
    ck.meta["metrics"], ck.arrays["test_embedding"]

Every write is atomic: bytes go to a temporary file in the same folder, are fsynced, then
renamed over the target, so an interrupted save never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from trainer.model import VAE, VAEConfig

FORMAT_NAME = "vae-latent-explorer"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


@dataclass
class Checkpoint:
    path: Path
    config: VAEConfig
    model: VAE
    meta: dict
    arrays: dict[str, torch.Tensor] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None  # only for resumable checkpoints

    @property
    def name(self) -> str:
        return self.meta.get("name") or self.path.stem

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.config.image_shape)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_checkpoint(
    path: str | os.PathLike,
    model: VAE,
    meta: dict,
    arrays: dict[str, torch.Tensor] | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint atomically. ``meta`` must be JSON-serialisable."""
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    for prefix, group in (("arrays", arrays or {}), ("state", state or {})):
        for k, v in group.items():
            tensors[f"{prefix}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "model_config": json.dumps(model.config.to_dict()),
        "meta": json.dumps(meta),
    }
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))
    return Path(path)


def _header(path: Path) -> dict[str, str]:
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(
            f"{path}: not a readable safetensors checkpoint (truncated or corrupt?): {e}"
        ) from None


def _check_header(path: Path, md: dict[str, str]) -> tuple[VAEConfig, dict]:
    if md.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a {FORMAT_NAME} checkpoint (format={md.get('format')!r})")
    version = md.get("format_version")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r}, this program reads version {FORMAT_VERSION}"
        )
    try:
        config = VAEConfig.from_dict(json.loads(md["model_config"]))
        meta = json.loads(md.get("meta", "{}"))
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: bad model config or metadata in the header: {e}") from None
    return config, meta


def read_metadata(path: str | os.PathLike) -> tuple[VAEConfig, dict]:
    """The config and ``meta`` of a checkpoint, reading only its header (cheap)."""
    path = Path(path)
    return _check_header(path, _header(path))


def load_checkpoint(path: str | os.PathLike, with_state: bool = False) -> Checkpoint:
    """Load and validate a checkpoint; the model comes back in eval mode on the CPU.

    Raises :class:`CheckpointError` for a missing, truncated or corrupt file, a foreign or
    newer format, or a config that does not match the stored weights."""
    path = Path(path)
    config, meta = read_metadata(path)
    try:
        tensors = st_load(path.read_bytes())
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: could not read the tensors (truncated or corrupt?): {e}") from None
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "arrays": {}, "state": {}}
    for k, v in tensors.items():
        prefix, _, rest = k.partition(".")
        if prefix not in groups or not rest:
            raise CheckpointError(f"{path}: unexpected tensor {k!r}")
        groups[prefix][rest] = v
    model = VAE(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(groups["model"]))
    unexpected = sorted(set(groups["model"]) - set(expected))
    wrong = sorted(
        f"{k} {tuple(groups['model'][k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in groups["model"] and groups["model"][k].shape != v.shape
    )
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"unexpected {unexpected}")
        if wrong:
            parts.append(f"shape mismatch {wrong}")
        raise CheckpointError(f"{path}: model config does not match the weights: " + "; ".join(parts))
    model.load_state_dict(groups["model"], strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Checkpoint(
        path=path,
        config=config,
        model=model,
        meta=meta,
        arrays=groups["arrays"],
        state=groups["state"] if with_state and groups["state"] else None,
    )


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """The ``*.safetensors`` files of a folder, sorted by name."""
    folder = Path(folder)
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
