"""The Compare tab's measured figures, stored once beside the checkpoints (``compare.json``).

The figures (``explorer/compare.py``) take seconds per model and need the dataset and the digit
classifier, so they are measured once, by ``python -m bench.compare_autoencoders``, and the app
only reads them. The file is JSON::

    {"format": "vae-latent-explorer-compare", "version": 1, "seed": 0,
     "classifier": {"test_accuracy": 0.9911, ...},
     "models": {"mnist-z2": {"checksum": "sha256:...", "kind": "vae", "z_dim": 2,
                             "title": "...", "cpu_s": 9.1, "result": <compare_model(...)>}, ...},
     "ideal": {"2": <figures of a true N(0, I) sample and of real test digits>, ...}}

A model's figures belong to one version of its file: ``checksum`` is :func:`fingerprint` (the
checkpoint's own checksum, or for a file written before checksums a SHA-256 of its bytes), and
:func:`figures_for` gives nothing for a file that has changed since. Reading is defensive like
the checkpoint reader's: a bounded size, then every field the app reads checked for type
(:mod:`trainer.checkpoint_meta`'s checks); any problem raises :class:`CompareFileError` with one
line naming the file.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from trainer.checkpoint_meta import Check, anything, list_of, mapping, number, text
from trainer.fileio import atomic_write_bytes

FILE_NAME = "compare.json"
FORMAT = "vae-latent-explorer-compare"
VERSION = 1
MAX_BYTES = 4 << 20  # a table of 12 models with 20-D per-dimension lists is about 60 kB

__all__ = ["CompareFileError", "Stored", "FILE_NAME", "read", "write", "fingerprint", "figures_for", "store_path",
           "measure", "classifier_for"]


class CompareFileError(ValueError):
    """A compare file that cannot be used; the message (one line) names the file."""


def _required(**checks: Check) -> Check:
    """A JSON object that has every named field, each passing its check (other fields kept)."""
    inner = mapping(anything, fields=checks)

    def f(v) -> str | None:
        if isinstance(v, dict) and (missing := [k for k in checks if k not in v]):
            return f"lacks {missing}"
        return inner(v)

    return f


_NUM = number(finite=False)  # kl_fit is infinite for a collapsed dimension
_DIMS = list_of(number(finite=False), 4096)
_GAUSS = _required(ks_mean=_NUM, ks_max=_NUM, energy_distance=_NUM, kl_fit=_NUM, mean_abs_max=_NUM, sd_min=_NUM,
                   sd_max=_NUM)
_GAUSS_DIMS = mapping(anything, fields={"mean": _DIMS, "sd": _DIMS, "ks": _DIMS})
_SHIFT = _required(level=_NUM, shift=_NUM, normalised_shift=_NUM)
_KNN = mapping(anything, fields={"knn_accuracy_clean": _NUM, "knn_accuracy_corrupted": _NUM})
_SECTIONS: dict[str, Check] = {
    "separation": _required(knn_accuracy=_NUM, silhouette=_NUM),
    "gaussianity": _GAUSS,
    "gaussianity_sampled": _GAUSS,
    "generation": _required(confidence=_NUM, confident_fraction=_NUM, entropy_bits=_NUM),
    "reconstruction": _required(sse_per_image=_NUM, bce_per_image=_NUM),
    "robustness": mapping(lambda v: _SHIFT(v) or _KNN(v), fields={"spread": _NUM}),
}


def _result(v, required: tuple[str, ...] = ("separation", "gaussianity")) -> str | None:
    """A :func:`explorer.compare.compare_model` result: ``required`` sections and any others
    present of the right shape (``gaussianity`` with its per-dimension lists)."""
    if not isinstance(v, dict):
        return f"must be an object, got {type(v).__name__}"
    if missing := [k for k in required if k not in v]:
        return f"lacks {missing}"
    for k, check in _SECTIONS.items():
        if k in v and (why := check(v[k])) is not None:
            return f"{k!r} {why}"
    for k in ("gaussianity", "gaussianity_sampled"):
        if k in v and (why := _GAUSS_DIMS(v[k])) is not None:
            return f"{k!r} {why}"
    return None


_MODEL = _required(checksum=text(100), kind=text(10), z_dim=number(1, 4096, integer=True), result=_result)
_IDEAL = mapping(lambda v: _result(v, required=()))  # reference figures: any sections
_DOC = _required(format=text(100), version=number(integer=True), models=mapping(_MODEL), ideal=_IDEAL,
                 classifier=mapping(anything))


@dataclass(frozen=True)
class Stored:
    """A compare file's content: ``models`` name -> entry (checksum, kind, z_dim, title, cpu_s,
    result), ``ideal`` latent size J -> reference figures, ``classifier`` its description."""

    models: dict[str, dict]
    ideal: dict[int, dict]
    classifier: dict
    seed: int = 0


def store_path(checkpoint_dir: str | os.PathLike) -> Path:
    """Where a checkpoint folder's compare file lives."""
    return Path(checkpoint_dir) / FILE_NAME


def read(path: str | os.PathLike) -> Stored:
    """Read and check a compare file. Raises :class:`CompareFileError` (one line) for a missing,
    oversized, non-JSON, foreign or malformed file."""
    path = Path(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise CompareFileError(f"{path}: not a regular file")
        if st.st_size > MAX_BYTES:
            raise CompareFileError(f"{path}: {st.st_size:,} bytes, more than the {MAX_BYTES:,} a compare file may have")
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise CompareFileError(f"{path}: no compare file (python -m bench.compare_autoencoders writes it)") from None
    except OSError as e:
        raise CompareFileError(f"{path}: cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_BYTES:
        raise CompareFileError(f"{path}: more than the {MAX_BYTES:,} bytes a compare file may have")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:  # bad JSON, bad UTF-8, nested too deeply
        raise CompareFileError(f"{path}: not JSON ({' '.join(str(e).split())[:120]})") from None
    if (why := _DOC(doc)) is not None:
        raise CompareFileError(f"{path}: not a usable compare file: {why[:200]}")
    if doc["format"] != FORMAT or doc["version"] != VERSION:
        raise CompareFileError(f"{path}: format {doc['format']!r} version {doc['version']}, this program reads "
                               f"{FORMAT!r} version {VERSION}")
    ideal = {}
    for k, v in doc["ideal"].items():
        if not k.isdigit():
            raise CompareFileError(f"{path}: ideal figures are keyed by latent size, got {k[:40]!r}")
        ideal[int(k)] = v
    seed = doc.get("seed", 0)
    return Stored(models=doc["models"], ideal=ideal, classifier=doc["classifier"],
                  seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 0)


def write(path: str | os.PathLike, stored: Stored) -> Path:
    """Write ``stored`` atomically; refuses (CompareFileError) what :func:`read` would refuse."""
    doc = {"format": FORMAT, "version": VERSION, "seed": stored.seed, "classifier": stored.classifier,
           "models": stored.models, "ideal": {str(k): v for k, v in sorted(stored.ideal.items())}}
    if (why := _DOC(doc)) is not None:
        raise CompareFileError(f"{path}: not written: {why[:200]}")
    data = json.dumps(doc, indent=1, sort_keys=True).encode()
    if len(data) > MAX_BYTES:
        raise CompareFileError(f"{path}: not written: {len(data):,} bytes, more than {MAX_BYTES:,}")
    atomic_write_bytes(path, data)
    return Path(path)


def fingerprint(ck) -> str:
    """What identifies one version of a checkpoint file: its recorded checksum (``sha256:...``),
    or for a file written before checksums ``file-sha256:`` of its bytes (read once, bounded by
    the checkpoint reader's size limit)."""
    if ck.checksum:
        return ck.checksum
    import hashlib

    h = hashlib.sha256()
    with open(ck.path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "file-sha256:" + h.hexdigest()


def figures_for(stored: Stored, name: str, checksum: str | None) -> dict | None:
    """The stored figures of model ``name`` if they were measured on this version of its file
    (same ``checksum``, a :func:`fingerprint`), else None."""
    entry = stored.models.get(name)
    if entry is None or checksum is None or entry["checksum"] != checksum:
        return None
    return entry["result"]


def classifier_for(dataset: str, image_shape: tuple[int, int]):
    """The shipped MNIST digit classifier (``trainer.digit_classifier``) for an MNIST model, else
    None (the generation figures need it). Raises its reader's error for a damaged file."""
    if dataset != "mnist" or tuple(image_shape) != (28, 28):
        return None
    from trainer.digit_classifier import load_classifier

    return load_classifier()


def measure(ck, images=None, classifier=None, seed: int = 0) -> dict:
    """Every figure :func:`explorer.compare.compare_model` can give for checkpoint ``ck``, as a
    compare file's model entry. ``images``: the dataset's test images (M, H, W) or (M, D) in
    [0, 1], in dataset order (rows are matched through ``test_index``); without them no
    reconstruction or robustness. Takes seconds (the kNN folds, the corrupted encodings)."""
    import time

    import numpy as np

    from explorer.compare import compare_model, model_functions  # scikit-learn, scipy: only when measuring

    encode, decode = model_functions(ck.model)
    index = ck.arrays.get("test_index")
    if images is not None:
        x = np.asarray(images, dtype=np.float32)
        x = x.reshape(len(x), -1)
        images = x[index.numpy()] if index is not None else x[: len(ck.arrays["test_mu"])]
    t0 = time.process_time()
    res = compare_model(ck.arrays["test_mu"], ck.arrays["test_labels"], encode=encode, decode=decode, images=images,
                        classifier=classifier, logvar=ck.arrays.get("test_logvar"), seed=seed)
    return {"checksum": fingerprint(ck), "kind": ck.config.kind, "z_dim": ck.config.z_dim,
            "title": str(ck.meta.get("title") or ck.path.stem), "cpu_s": round(time.process_time() - t0, 2),
            "result": res}
