"""The ``meta`` JSON of a checkpoint: what every field the app and the trainer read must look like.

:func:`check_meta` runs on every read (``trainer/checkpoint.py``) before anything is built from
the file, and on every write, so the trainer cannot write a file its reader would refuse.

Two kinds of field (``J`` is the config's latent size):

- load-bearing, which change what is computed (the dataset decides how uploads are preprocessed
  and which labels and originals apply; ``binarized`` decides the evaluation's test set;
  ``resume`` where training continues): a wrong type refuses the file (:class:`MetaError`).
- display-only (title, metrics, history, KL per dimension, directions' descriptions and scores,
  label names, train config, provenance, timings...): a wrong one is dropped, with a one-line
  warning, so the model stays usable and no tab meets a value it cannot show.

Fields nobody reads are kept as they are, if nested at most :data:`MAX_DEPTH` deep (else
dropped too), so no view recurses deeply over any part of the document.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable
from typing import Any

from trainer.corruption import CORRUPTIONS

MAX_DEPTH = 32  # nesting of the whole meta document; the trainer writes 5
MAX_ITEMS = 1_000_000  # entries of any one list or object (history of 1000 epochs: 1000)

# A check returns None when the value is fine, else why not (a short phrase).
Check = Callable[[Any], "str | None"]


class MetaError(ValueError):
    """A ``meta`` document that cannot be used; the caller adds the file name."""


def _kind(v: Any) -> str:
    """A value as its JSON spelling, or its JSON type when it would be long."""
    if isinstance(v, str):
        return f"a string of {len(v)} characters" if len(v) > 40 else repr(v)
    if isinstance(v, (bool, type(None))):
        return json.dumps(v)
    if isinstance(v, (int, float)):
        r = repr(v)
        return r if len(r) <= 40 else f"a {len(r)}-digit number"
    return {"dict": "an object", "list": "a list"}.get(type(v).__name__, f"a {type(v).__name__}")


def text(limit: int = 200) -> Check:
    return lambda v: None if isinstance(v, str) and len(v) <= limit else (
        f"must be a string of at most {limit} characters, got {_kind(v)}")


def one_of(options: tuple[str, ...]) -> Check:
    return lambda v: None if isinstance(v, str) and v in options else f"must be one of {list(options)}, got {_kind(v)}"


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, got {_kind(v)}"


def number(lo: float = -1e300, hi: float = 1e300, integer: bool = False, finite: bool = True) -> Check:
    """An int or float (never a bool) in [lo, hi]; ``finite=False`` also lets NaN and inf through.
    The default bounds keep every value convertible to a float (10**400 is not)."""
    what = "an integer" if integer else "a number"
    # JSON gives int and float: checked by exact type first (an ABC isinstance costs 10x more,
    # and a history has thousands of numbers); numpy scalars from the writer take the slow path.
    plain, abstract = ((int,), numbers.Integral) if integer else ((int, float), numbers.Real)

    def check(v: Any) -> str | None:
        t = type(v)
        if t not in plain and (isinstance(v, bool) or not isinstance(v, abstract)):
            return f"must be {what}, got {_kind(v)}"
        if t is not int and (t is float or not isinstance(v, numbers.Integral)) and not math.isfinite(v):
            return None if not finite else f"must be a finite number, got {_kind(v)}"
        if not lo <= v <= hi:
            where = f">= {lo:g}" if hi == 1e300 else f"<= {hi:g}" if lo == -1e300 else f"in [{lo:g}, {hi:g}]"
            return f"must be {what} {where}, got {_kind(v)}"
        return None

    return check


def optional(check: Check) -> Check:
    return lambda v: None if v is None else check(v)


def anything(v: Any) -> str | None:
    """Any JSON value not nested deeper than :data:`MAX_DEPTH` (the checks above bound the depth
    of what they accept by their own structure; this bounds the rest)."""
    return None if depth(v) <= MAX_DEPTH else f"nested more than {MAX_DEPTH} levels deep"


_ANY_NUMBER, _TEXT = number(finite=False), text(1000)


def scalar(v: Any) -> str | None:
    """A number (NaN and inf included), a string of at most 1000 characters, a bool or null."""
    ok = v is None or isinstance(v, bool) or _ANY_NUMBER(v) is None or _TEXT(v) is None
    return None if ok else f"must be a number, a string, true/false or null, got {_kind(v)}"




def list_of(check: Check, max_len: int = MAX_ITEMS, min_len: int = 0) -> Check:
    def f(v: Any) -> str | None:
        if not isinstance(v, list):
            return f"must be a list, got {_kind(v)}"
        if not min_len <= len(v) <= max_len:
            size = max_len if min_len == max_len else f"{min_len} to {max_len}"
            return f"must have {size} entries, got {len(v)}"
        for i, x in enumerate(v):
            if (why := check(x)) is not None:
                return f"entry {i} {why}"
        return None

    return f


def mapping(values: Check, keys: Check | None = None, fields: dict[str, Check] | None = None) -> Check:
    """A JSON object: keys checked by ``keys`` (default: strings of at most 100 characters),
    the values of the named ``fields`` by their own check, every other value by ``values``."""
    fields = fields or {}
    keys = keys or text(100)

    def f(v: Any) -> str | None:
        if not isinstance(v, dict):
            return f"must be an object, got {_kind(v)}"
        if len(v) > MAX_ITEMS:
            return f"must have at most {MAX_ITEMS} entries, got {len(v)}"
        for k, x in v.items():
            if (why := keys(k)) is not None:
                return f"key {why}"
            if (why := fields.get(k, values)(x)) is not None:
                return f"{_kind(k)} {why}"
        return None

    return f


def record(**fields: Check) -> Check:
    """An object whose named fields are checked (each optional) and other fields kept as they are."""
    return mapping(anything, fields=fields)


# The curves and the model card read these per-epoch numbers (trainer.train's history records).
# An autoencoder's records have its objective (reconstruction error) as train_loss / test_loss instead.
HISTORY_NUMBERS = ("epoch", "train_elbo", "train_rec", "train_kl", "test_elbo", "test_rec", "test_kl",
                   "train_loss", "test_loss")
HISTORY_ENTRY = mapping(scalar, fields={k: optional(number()) for k in HISTORY_NUMBERS})
# A direction's description and held-out scores (trainer.directions.direction_entry), shown as
# text and formatted with "{:.2f}"; spread scales the step (explorer.directions.Direction.spread).
DIRECTION_ENTRY = record(
    label=text(1000), description=text(4000), kind=text(100), unit=text(100), source=text(4000), cv=text(1000),
    n_pos=number(0, integer=True), n_neg=number(0, integer=True), spread=optional(number(0, 1e12)),
    quality=mapping(optional(number(finite=False)), keys=text(100)),
)
# A denoising autoencoder's corruption C(x~|x) (trainer.corruption): its kind and level.
CORRUPTION = record(kind=one_of(CORRUPTIONS), level=number(0, 1e3))
RESUME = record(epoch=number(0, integer=True), batch_idx=number(0, integer=True), step=number(-1, integer=True),
                sums=list_of(number(), 3, 3))

# Load-bearing: a wrong value refuses the file.
REQUIRED: dict[str, Check] = {
    "dataset": text(64),
    "binarized": boolean,
    "resume": RESUME,
}


def display_fields(z_dim: int) -> dict[str, Check]:
    """Display-only fields and their checks for a model with ``z_dim`` latent dimensions."""
    return {
        # Generous limits: titles and folder names come from users, and the writer refuses what
        # the reader would drop, so a limit hit would cost a finished training run its save.
        "name": text(1000),
        "title": text(1000),
        "label_names": optional(list_of(text(1000), 100_000)),
        "metrics": mapping(scalar),
        "history": list_of(HISTORY_ENTRY),
        "kl_per_dim": list_of(number(-1.0, 1e9), z_dim, z_dim),
        "corruption": CORRUPTION,
        "directions": mapping(mapping(DIRECTION_ENTRY)),
        "train_config": record(data_dir=optional(text(4096)), image_folder=optional(text(4096))),
        "provenance": optional(mapping(anything)),
        "wall_time_s": number(0, 1e9), "eval_time_s": number(0, 1e9),
        "n_train": number(0, integer=True), "n_test": number(0, integer=True),
        "image_shape": list_of(number(1, integer=True), 2, 2),
        "likelihood": text(40), "embedding": text(40), "created": text(100), "torch_version": text(100),
    }


def depth(v: Any) -> int:
    """Nesting depth of a JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(v, 0)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, (list, dict)):
            deepest = max(deepest, d + 1)
            if deepest > MAX_DEPTH:
                return deepest
            stack.extend((y, d + 1) for y in (x.values() if isinstance(x, dict) else x))
    return deepest


def check_meta(meta: Any, z_dim: int, strict: bool = False) -> tuple[dict, list[str]]:
    """``(meta with bad display fields removed, one warning per removed field)``.

    Raises :class:`MetaError` when ``meta`` is not an object or a load-bearing field is wrong;
    with ``strict`` (the writer) also when any other field is."""
    if not isinstance(meta, dict):
        raise MetaError(f"meta must be a JSON object, got {_kind(meta)}")
    for k, check in REQUIRED.items():
        if k in meta and (why := check(meta[k])) is not None:
            raise MetaError(f"meta field {k!r} {why}")
    clean, warnings = {}, []
    display = display_fields(z_dim)
    for k, v in meta.items():
        why = display.get(k, anything)(v)
        if why is None:
            clean[k] = v
        elif strict:
            raise MetaError(f"meta field {k!r} {why}")
        else:
            warnings.append(f"meta field {k!r} dropped: {why}")
    return clean, warnings
