"""The checkpoint format: one self-describing safetensors file per model. Never pickle.

Layout of a file (format ``vae-latent-explorer``, version :data:`FORMAT_VERSION`):

- tensors ``model.<name>``: the model's ``state_dict`` (float32).
- tensors ``arrays.<name>``: what the app needs to open instantly and offline, e.g.
  ``test_mu`` / ``test_logvar`` (N, J) latent means and log-variances of the test set (an
  autoencoder, ``kind`` ae or dae, stores its deterministic codes as ``test_mu`` and no ``test_logvar``),
  ``test_labels`` (N,), ``test_embedding`` (N, 2) a 2-D UMAP of ``test_mu`` (for J = 2 the means
  themselves), ``direction.<name>`` (J,) manipulation directions. No dataset images.
- tensors ``state.<name>`` (only in resumable checkpoints): optimizer moments and RNG states.
- string metadata: ``format``, ``format_version``, ``model_config`` (JSON of
  :class:`trainer.model.VAEConfig`, with the model's ``kind``: vae, ae or dae; files written
  before ``kind`` existed lack it and hold VAEs), ``meta`` (JSON: dataset, image shape, likelihood,
  metrics, training history, data provenance, train config, wall time, ...; its schema is
  ``trainer/checkpoint_meta.py``) and ``checksum`` (``sha256:<hex>``, see :func:`content_digest`;
  files written before it existed have none and still load, with :attr:`Checkpoint.checksum` None).

Python API::

    from trainer.checkpoint import load_checkpoint
    ck = load_checkpoint("checkpoints/mnist-z20.safetensors")
    mu, logvar = ck.model.encode(x)          # x: (B, H*W) floats in [0, 1]
    images = ck.model.decode(z)              # z: (B, J) -> (B, H*W) mean images
    samples = ck.model.sample(16)            # (16, H*W) decoded prior draws
    ck.meta["metrics"], ck.arrays["test_embedding"]

Every write is atomic (``trainer/fileio.py``): bytes go to a temporary file in the same folder,
are fsynced, then renamed over the target, so an interrupted save never leaves a half-written file.

Reading is defensive, because the app opens whatever sits in its checkpoint folder: only regular
files are opened, never blocking (a FIFO or a directory named ``*.safetensors`` is refused at
once); the file is read once, bounded in size (:data:`MAX_FILE_BYTES`); header, config and meta
are checked for type and range before anything is sized from them; the model is built on the
``meta`` device (no memory) and takes the file's tensors, so ``load_state_dict(strict=True)``
names any missing, unexpected or wrongly shaped weight; weights must be float32 and every float
tensor finite; a recorded checksum must match. Whatever the bytes, the only error is
:class:`CheckpointError`, one line, naming the file.
"""


from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from trainer.checkpoint_meta import MetaError, check_meta
from trainer.fileio import atomic_write_bytes
from trainer.model import VAE, VAEConfig

FORMAT_NAME = "vae-latent-explorer"
FORMAT_VERSION = 1
CHECKSUM_KEY = "checksum"
METADATA_KEYS = ("format", "format_version", "model_config", "meta", CHECKSUM_KEY)
MAX_FILE_BYTES = 1 << 30  # 1 GiB; the shipped checkpoints are 2-7 MB
MAX_HEADER_BYTES = 16 << 20  # safetensors' JSON header with the meta; a 1000-epoch history is 0.3 MB
# Tensor types: weights and float arrays are float32 (what VAEConfig implies; the writer stores no
# other); labels, indices, RNG state and permutations are integers; the resumable state may also
# hold float64. Arrays the app reads must be of the kind it computes with.
INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)
FLOAT_ARRAYS = ("test_mu", "test_logvar", "test_embedding", "direction.")  # "direction." is a prefix
INT_ARRAYS = ("test_labels", "test_index")

__all__ = ["Checkpoint", "CheckpointError", "atomic_write_bytes", "content_digest", "list_checkpoints",
           "load_checkpoint", "read_metadata", "save_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message (one line) names the file and what is wrong."""


@dataclass
class Checkpoint:
    path: Path
    config: VAEConfig
    model: VAE
    meta: dict
    arrays: dict[str, torch.Tensor] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None  # only for resumable checkpoints
    checksum: str | None = None  # the verified "sha256:<hex>"; None for files written before checksums
    warnings: list[str] = field(default_factory=list)  # meta fields dropped on load, one line each

    @property
    def name(self) -> str:
        return self.meta.get("name") or self.path.stem

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.config.image_shape)


def _short(v, limit: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _one_line(e: BaseException, limit: int = 300) -> str:
    s = " ".join(str(e).split()) or type(e).__name__
    return s if len(s) <= limit else s[: limit - 3] + "..."


# --- writing ---------------------------------------------------------------------------------

def content_digest(metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """``sha256:<hex>`` of a checkpoint's content: every metadata string but the checksum itself,
    then every tensor's name, dtype, shape and raw bytes, in name order.

    safetensors has no checksum of its own. This one covers the header as well as the tensor
    data, so one changed bit anywhere that still parses is caught; it does not depend on how
    safetensors lays the bytes out, so it is computed before serialising."""
    h = hashlib.sha256()
    for k in sorted(metadata):
        if k != CHECKSUM_KEY:
            h.update(json.dumps([k, metadata[k]]).encode() + b"\n")
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(json.dumps([k, str(t.dtype), list(t.shape)]).encode() + b"\n")
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return "sha256:" + h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike,
    model: VAE,
    meta: dict,
    arrays: dict[str, torch.Tensor] | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint atomically, with its checksum. ``meta`` must be JSON-serialisable and
    pass ``trainer/checkpoint_meta.py``'s checks (else :class:`CheckpointError`, nothing written);
    float ``arrays`` (N, ...) are stored as float32, the format's type."""
    try:
        check_meta(meta, model.config.z_dim, strict=True)
    except MetaError as e:
        raise CheckpointError(f"{path}: not written: {e}") from None
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    for prefix, group in (("arrays", arrays or {}), ("state", state or {})):
        for k, v in group.items():
            t = torch.as_tensor(v).detach().cpu()
            if prefix == "arrays" and t.is_floating_point():
                t = t.to(torch.float32)
            tensors[f"{prefix}.{k}"] = t.contiguous()
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "model_config": json.dumps(model.config.to_dict()),
        "meta": json.dumps(meta),
    }
    metadata[CHECKSUM_KEY] = content_digest(metadata, tensors)
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))
    return Path(path)


# --- reading: the file, its header, its tensors ---------------------------------------------

def _not_regular(path: Path, mode: int) -> CheckpointError:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    kind = next((name for test, name in kinds if test(mode)), "of an unknown kind")
    return CheckpointError(f"{path}: not a regular file ({kind})")


def _open_regular(path: Path) -> tuple[int, int]:
    """``(fd, size)`` of ``path`` opened for reading: regular files only, never blocking."""
    try:
        # stat does not open: a FIFO or a device is refused without being touched.
        if not stat.S_ISREG(mode := os.stat(path).st_mode):
            raise _not_regular(path, mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file (or a link to nothing)") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot open: {e.strerror or _one_line(e)}") from None
    st = os.fstat(fd)  # what was opened, in case the name was swapped after the stat
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE_BYTES:
        os.close(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode)
        raise CheckpointError(f"{path}: {st.st_size:,} bytes, more than the {MAX_FILE_BYTES:,} a checkpoint may have")
    return fd, st.st_size


def _read(path: Path, header_only: bool) -> tuple[bytes, bytes | None]:
    """One read of the file: ``(header JSON, whole file or None)``."""
    fd, size = _open_regular(path)
    try:
        with open(fd, "rb", buffering=0) as f:
            data = f.read(8 if header_only else size)
            n = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
            if not 0 < n <= min(MAX_HEADER_BYTES, size - 8):
                raise CheckpointError(f"{path}: not a readable safetensors checkpoint (truncated or corrupt: "
                                      f"{size} bytes, header length {n})")
            header = f.read(n) if header_only else data[8 : 8 + n]
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror or _one_line(e)}") from None
    if len(header) != n or (not header_only and len(data) != size):
        raise CheckpointError(f"{path}: the file changed size while being read")
    return header, None if header_only else data


def _json(s: str | bytes):
    try:
        return json.loads(s)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _metadata(path: Path, header: bytes) -> dict[str, str]:
    """safetensors' string metadata (``__metadata__``) from the file's JSON header."""
    try:
        doc = _json(header)
    except ValueError as e:  # bad JSON, bad UTF-8, too deep, a 5000-digit number
        raise CheckpointError(
            f"{path}: not a readable safetensors checkpoint (corrupt header: {_one_line(e)})"
        ) from None
    md = doc.get("__metadata__") if isinstance(doc, dict) else None
    if not isinstance(md, dict) or not all(isinstance(v, str) for v in md.values()):
        raise CheckpointError(f"{path}: not a {FORMAT_NAME} checkpoint (no string metadata in its header)")
    return md


def _check_header(path: Path, md: dict[str, str]) -> tuple[VAEConfig, dict, list[str]]:
    """Format, version, model config and meta, each checked: ``(config, meta, warnings)``."""
    if md.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a {FORMAT_NAME} checkpoint (format={_short(md.get('format'))})")
    version = md.get("format_version")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(
            f"{path}: checkpoint format version {_short(version)}, this program reads version {FORMAT_VERSION}"
        )
    unknown = sorted(set(md) - set(METADATA_KEYS))
    if unknown or "model_config" not in md:
        what = f"unexpected metadata {_short(unknown)}" if unknown else "no model_config"
        raise CheckpointError(f"{path}: {what} in the header (damaged?)")
    try:
        config = VAEConfig.from_dict(_json(md["model_config"]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: bad model config: {_one_line(e)}") from None
    try:
        meta, warnings = check_meta(_json(md.get("meta", "{}")), config.z_dim)
    except ValueError as e:
        raise CheckpointError(f"{path}: bad metadata: {_one_line(e)}") from None
    return config, meta, [f"{path.name}: {w}" for w in warnings]


def _dtype_problem(prefix: str, name: str, dtype: torch.dtype) -> str | None:
    """None if a tensor ``<prefix>.<name>`` may have ``dtype``, else what it should be."""
    if prefix == "model":
        return None if dtype == torch.float32 else "float32, as the model config implies"
    if prefix == "state":
        return None if dtype in (torch.float32, torch.float64, *INT_DTYPES) else "float32, float64 or integers"
    if name in INT_ARRAYS:
        return None if dtype in INT_DTYPES else "integers"
    if name.startswith(FLOAT_ARRAYS):
        return None if dtype == torch.float32 else "float32"
    return None if dtype in (torch.float32, *INT_DTYPES) else "float32 or integers"


def _tensors(path: Path, data: bytes, md: dict[str, str]) -> dict[str, dict[str, torch.Tensor]]:
    """The file's tensors, checksum-verified, by group: ``{"model": ..., "arrays": ..., "state": ...}``."""
    try:
        tensors = st_load(data)
    except Exception as e:  # noqa: BLE001 - safetensors' parser over untrusted bytes: any failure is "corrupt"
        raise CheckpointError(f"{path}: could not read the tensors (truncated or corrupt?): {_one_line(e)}") from None
    if CHECKSUM_KEY in md and md[CHECKSUM_KEY] != content_digest(md, tensors):
        raise CheckpointError(f"{path}: checksum mismatch: the file was modified or damaged")
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "arrays": {}, "state": {}}
    for k, v in tensors.items():
        prefix, _, rest = k.partition(".")
        if prefix not in groups or not rest:
            raise CheckpointError(f"{path}: unexpected tensor {_short(k)}")
        if (expected := _dtype_problem(prefix, rest, v.dtype)) is not None:
            raise CheckpointError(f"{path}: tensor {_short(k)} is {str(v.dtype).removeprefix('torch.')}, "
                                  f"expected {expected}")
        # numpy: torch.isfinite(...).all() costs 80x more here (1.7 ms per 200k floats, one thread)
        if v.is_floating_point() and not np.isfinite(v.numpy()).all():
            raise CheckpointError(f"{path}: tensor {_short(k)} holds NaN or infinite values")
        groups[prefix][rest] = v
    return groups


def _build(path: Path, config: VAEConfig, weights: dict[str, torch.Tensor]) -> VAE:
    """The model with the file's weights, in eval mode, no gradients."""
    with torch.device("meta"):
        model = VAE(config)  # shapes only: nothing is allocated until the weights are assigned
    try:
        # strict: every weight present, none extra, every shape right (else a RuntimeError listing them)
        model.load_state_dict(weights, strict=True, assign=True)
    except RuntimeError as e:
        msg = _one_line(e).removeprefix("Error(s) in loading state_dict for VAE: ")
        raise CheckpointError(f"{path}: model config does not match the weights: {msg}") from None
    return model.eval().requires_grad_(False)


def read_metadata(path: str | os.PathLike) -> tuple[VAEConfig, dict]:
    """The config and ``meta`` of a checkpoint, reading only its header (cheap). ``meta`` is
    checked as on load (display fields that are wrong are dropped)."""
    path = Path(path)
    header, _ = _read(path, header_only=True)
    config, meta, _ = _check_header(path, _metadata(path, header))
    return config, meta


def load_checkpoint(path: str | os.PathLike, with_state: bool = False) -> Checkpoint:
    """Load and validate a checkpoint; the model comes back in eval mode on the CPU.

    Raises :class:`CheckpointError`, and nothing else, for any file that cannot be used: missing,
    not a regular file, too large, truncated, corrupt, a foreign or newer format, a config or
    meta of the wrong type or range, weights that do not fit the config, non-float32 or
    non-finite tensors, a checksum mismatch."""
    path = Path(path)
    header, data = _read(path, header_only=False)
    md = _metadata(path, header)
    config, meta, warnings = _check_header(path, md)
    groups = _tensors(path, data, md)
    del data
    return Checkpoint(
        path=path,
        config=config,
        model=_build(path, config, groups["model"]),
        meta=meta,
        arrays=groups["arrays"],
        state=groups["state"] if with_state and groups["state"] else None,
        checksum=md.get(CHECKSUM_KEY),
        warnings=warnings,
    )


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """The ``*.safetensors`` names in a folder, sorted; whatever they are (a directory or a FIFO
    by that name is listed, and refused with a message when read)."""
    folder = Path(folder)
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
