"""The user directions file: the groups and vectors a user made in the Directions tab, as JSON.

Written by :func:`export_json`, read back by :func:`import_json`. Format (version 1, UTF-8)::

    {"format": "vae-latent-explorer-directions", "version": 1,
     "model": "mnist-z20", "dataset": "mnist", "n_test": 10000, "z_dim": 20,
     "groups": {"<name>": {"pos": [rows], "neg": [rows]}, ...},
     "vectors": {"<name>": [J numbers], ...}}

Rows index the dataset's test set, which every model of the dataset shares, so groups load
into any model of the same dataset; vectors only into a model with the same latent size J.
"model", "n_test" and "z_dim" are there for people reading the file; the reader ignores them.

A file may come from anyone, so reading one is bounded before anything big is built. Whatever
the bytes, :func:`import_json` returns valid groups and unit vectors, or raises
:class:`DirectionsFileError` with one line of at most a few hundred characters:

- the size is checked before parsing (:data:`MAX_BYTES`);
- nesting deeper than Python's recursion limit makes the parser raise RecursionError, which is
  refused like any other bad JSON (the file's own structure is 4 levels deep, and nothing
  deeper is ever walked);
- a number longer than :data:`MAX_NUMBER_CHARS` characters is refused as it is parsed (Python
  refuses to convert a 5000-digit integer, and 10**400 overflows a float), NaN and Infinity
  (not JSON, but Python's parser takes them) too;
- at most :data:`MAX_GROUPS` groups and :data:`MAX_VECTORS` vectors, and a list of rows is never
  longer than the test set, so the fits the app then runs are bounded too;
- names and values are clipped where a message shows them;
- vectors are divided by their largest entry before the norm is taken, so ``[1e200] * J``
  (whose squared norm overflows) is a direction like any other.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

FILE_FORMAT = "vae-latent-explorer-directions"
FILE_VERSION = 1
NAME_RE = re.compile(r"^[\w][\w .+\-]{0,59}$")
NAME_RULE = "1-60 letters, digits, spaces or _ . + -"
MAX_BYTES = 2 * 1024 * 1024  # 8 groups of all 10,000 MNIST test rows take about 0.8 MB
# Fitting a group of 10,000 rows with its held-out scores takes about 0.09 s of CPU (0.05 s for
# a few points), so loading the largest file costs the server under a second, once.
MAX_GROUPS = 8
MAX_VECTORS = 16
MAX_NUMBER_CHARS = 64  # a float's shortest repr is at most 24 characters
CLIP = 40  # characters of a name or value shown in a message


class DirectionsFileError(ValueError):
    """A user directions file that cannot be used; the message names it and what is wrong."""


def clip(text: str, n: int = CLIP) -> str:
    """``text`` for a one-line message: at most ``n`` characters (then "..."), anything not
    printable (newlines, separators, lone surrogates) shown as "?"."""
    s = "".join(c if c.isprintable() else "?" for c in text[:n])
    return s + ("..." if len(text) > n else "")


def shown(value) -> str:
    """A JSON value as a message shows it: strings quoted and clipped, numbers as they are
    (the parser bounds their length), lists and objects by their kind only (never walked)."""
    if isinstance(value, str):
        return repr(clip(value))
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def check_name(name, where: str) -> str:
    """``name`` if it is a usable direction name, else :class:`DirectionsFileError` naming ``where``."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise DirectionsFileError(f"{where}: a name must be {NAME_RULE}, got {shown(name)}")
    return name


def safe_unit(values: Sequence[float]) -> np.ndarray | None:
    """``values`` (J,) finite floats scaled to length 1, or None for a zero vector. Divides by
    the largest magnitude first, so neither huge (1e200) nor tiny (1e-300) entries overflow or
    underflow the norm."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    m = float(np.max(np.abs(a), initial=0.0))
    if m == 0.0:
        return None
    a = a / m
    return a / np.linalg.norm(a)


def export_json(model: str, dataset: str, n_test: int, z_dim: int, groups: Mapping[str, Mapping],
                vectors: Mapping[str, Sequence[float]] | None = None) -> bytes:
    """The user's groups ({name: {"pos": rows, "neg": rows}}) and plain vectors
    ({name: (J,)}) as a directions file (UTF-8 bytes)."""
    doc = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "model": model,
        "dataset": dataset,
        "n_test": int(n_test),
        "z_dim": int(z_dim),
        "groups": {n: {"pos": sorted(int(r) for r in g["pos"]), "neg": sorted(int(r) for r in g["neg"])}
                   for n, g in groups.items()},
        "vectors": {n: [float(x) for x in v] for n, v in (vectors or {}).items()},
    }
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


def _parse(data: bytes | str, where: str) -> object:
    """The JSON document in ``data``, parsed with the limits above."""
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > MAX_BYTES:
        raise DirectionsFileError(f"{where}: {size / 2**20:.1f} MB; a directions file is at most "
                                  f"{MAX_BYTES // 2**20} MB")

    def number(kind):
        def parse(token: str):
            if len(token) > MAX_NUMBER_CHARS:
                raise DirectionsFileError(f"{where}: a number of {len(token)} characters; at most {MAX_NUMBER_CHARS}")
            return kind(token)
        return parse

    def constant(token: str):
        raise DirectionsFileError(f"{where}: {token} is not a JSON number")

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, parse_int=number(int), parse_float=number(float), parse_constant=constant)
    except UnicodeError:
        raise DirectionsFileError(f"{where}: not a UTF-8 text file") from None
    except json.JSONDecodeError as e:
        raise DirectionsFileError(f"{where}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise DirectionsFileError(f"{where}: nested too deeply to be a directions file") from None


def _rows(r, where: str, side: str, n_test: int) -> list[int]:
    """A side of a group: a non-empty list of distinct-able integer rows of the test set."""
    if not isinstance(r, list) or not r:
        raise DirectionsFileError(f"{where}: \"{side}\" must be a non-empty list of integer rows")
    if len(r) > n_test:
        raise DirectionsFileError(f"{where}: \"{side}\" has {len(r)} rows, the test set only {n_test}")
    if not all(type(i) is int for i in r):  # bool is a subclass of int, and not a row
        raise DirectionsFileError(f"{where}: \"{side}\" must be a non-empty list of integer rows")
    bad = next((i for i in r if not 0 <= i < n_test), None)
    if bad is not None:
        raise DirectionsFileError(f"{where}: row {bad} is outside this model's test set (0..{n_test - 1})")
    return sorted(set(r))


def _groups(groups_in: dict, where: str, n_test: int) -> dict[str, dict]:
    if len(groups_in) > MAX_GROUPS:
        raise DirectionsFileError(f"{where}: {len(groups_in)} groups; at most {MAX_GROUPS}")
    groups: dict[str, dict] = {}
    for name, g in groups_in.items():
        w = f"{where}, group {shown(name)}"
        check_name(name, w)
        if not isinstance(g, dict) or set(g) != {"pos", "neg"}:
            raise DirectionsFileError(f"{w}: expected {{\"pos\": [rows], \"neg\": [rows]}}")
        rows = {side: _rows(g[side], w, side, n_test) for side in ("pos", "neg")}
        both = set(rows["pos"]).intersection(rows["neg"])
        if both:
            raise DirectionsFileError(f"{w}: row {min(both)} is in both pos and neg")
        groups[name] = rows
    return groups


def _vectors(vectors_in: dict, where: str, z_dim: int) -> dict[str, list[float]]:
    if len(vectors_in) > MAX_VECTORS:
        raise DirectionsFileError(f"{where}: {len(vectors_in)} vectors; at most {MAX_VECTORS}")
    vectors: dict[str, list[float]] = {}
    for name, v in vectors_in.items():
        w = f"{where}, vector {shown(name)}"
        check_name(name, w)
        if not isinstance(v, list) or len(v) != z_dim:
            got = f"{len(v)} values" if isinstance(v, list) else shown(v)
            raise DirectionsFileError(f"{w}: expected {z_dim} numbers for this {z_dim}-D model, got {got}")
        # ints are at most MAX_NUMBER_CHARS digits, so float() cannot overflow
        if not all(type(x) in (int, float) and math.isfinite(float(x)) for x in v):
            raise DirectionsFileError(f"{w}: every entry must be a finite number")
        u = safe_unit([float(x) for x in v])
        if u is None:
            raise DirectionsFileError(f"{w}: has zero length")
        vectors[name] = [float(x) for x in u]
    return vectors


def import_json(data: bytes | str, dataset: str, n_test: int, z_dim: int,
                filename: str = "directions file") -> tuple[dict[str, dict], dict[str, list[float]]]:
    """Parse and validate a file written by :func:`export_json` for a model of ``dataset``
    with ``n_test`` test points and a ``z_dim``-D latent.

    Returns (groups {name: {"pos": [rows], "neg": [rows]}} with sorted distinct rows, vectors
    {name: [J floats]} scaled to unit length). Raises :class:`DirectionsFileError` with a
    one-line message naming ``filename`` and what is wrong (too big, not JSON, another format
    or dataset, too many groups, rows out of range, wrong vector size, a row in both A and
    B...). Vectors of another latent size are an error; groups are not tied to a latent size."""
    where = clip(str(filename), 60)
    doc = _parse(data, where)
    if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
        raise DirectionsFileError(f"{where}: not a directions file (expected \"format\": \"{FILE_FORMAT}\")")
    version = doc.get("version")
    if type(version) is not int or version != FILE_VERSION:
        raise DirectionsFileError(f"{where}: version {shown(version)}, this app reads version {FILE_VERSION}")
    if doc.get("dataset") != dataset:
        raise DirectionsFileError(f"{where}: made for dataset {shown(doc.get('dataset'))}, this model is {dataset!r}")
    groups_in, vectors_in = doc.get("groups", {}), doc.get("vectors", {})
    if not isinstance(groups_in, dict) or not isinstance(vectors_in, dict):
        raise DirectionsFileError(f"{where}: \"groups\" and \"vectors\" must be JSON objects")
    return _groups(groups_in, where, n_test), _vectors(vectors_in, where, z_dim)
