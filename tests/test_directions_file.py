"""The user directions file (explorer.directions_file): the round trip, each documented refusal,
and property tests over families of hostile files: whatever the bytes, import_json returns
valid groups and unit vectors that the app can use, or raises DirectionsFileError with one
short line, and it refuses what is too big before parsing it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer import directions as ed
from explorer import directions_file as df

N_TEST, J = 50, 4
MAX_MESSAGE = 300
# No example database (it would write .hypothesis/ into the repository); no deadline (timing
# asserts fail on a loaded machine: the size limits bound the work instead, tested below).
PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MU = np.random.default_rng(0).standard_normal((N_TEST, J))


def _doc(**fields) -> dict:
    return {"format": df.FILE_FORMAT, "version": 1, "dataset": "mnist", **fields}


def _read(data):
    """import_json on ``data`` for an MNIST model with N_TEST test points and J latents, checked
    against the contract: returns (groups, vectors) or None when the file was refused."""
    try:
        groups, vectors = df.import_json(data, "mnist", N_TEST, J, filename="up.json")
    except df.DirectionsFileError as e:
        msg = str(e)
        assert msg.startswith("up.json: ") or msg.startswith("up.json, "), msg[:200]
        assert "\n" not in msg and "\r" not in msg and len(msg) <= MAX_MESSAGE, msg[:400]
        assert msg.isprintable(), msg[:400]
        return None
    assert len(groups) <= df.MAX_GROUPS and len(vectors) <= df.MAX_VECTORS
    for name, g in groups.items():
        assert df.NAME_RE.match(name) and set(g) == {"pos", "neg"}
        for rows in g.values():
            assert rows and rows == sorted(set(rows)) and all(type(r) is int and 0 <= r < N_TEST for r in rows)
        assert not set(g["pos"]) & set(g["neg"])
    for name, v in vectors.items():
        assert df.NAME_RE.match(name) and len(v) == J and all(type(x) is float and math.isfinite(x) for x in v)
        assert abs(math.fsum(x * x for x in v) - 1) < 1e-9
        d = ed.vector_direction(MU, name, v)  # what every rerun of the tab does with it
        assert np.isfinite(d.vector).all() and d.spread > 0
    return groups, vectors


# --------------------------------------------------------------------------- good files


def test_round_trip():
    groups = {"thin ones": {"pos": [5, 1, 3], "neg": [0, 2]}, "b": {"pos": [7], "neg": [8, 9]}}
    vectors = {"v1": [0.5, -1.0, 2.0]}
    data = df.export_json("m", "mnist", 10, 3, groups, vectors)
    g, v = df.import_json(data, "mnist", 10, 3)
    assert g == {"thin ones": {"pos": [1, 3, 5], "neg": [0, 2]}, "b": {"pos": [7], "neg": [8, 9]}}
    assert np.allclose(v["v1"], np.array(vectors["v1"]) / np.linalg.norm(vectors["v1"]))
    # groups are tied to the dataset's test set, not the latent size
    g2, _ = df.import_json(df.export_json("m", "mnist", 10, 3, groups), "mnist", 10, 20)
    assert g2 == g
    # what is read back reads back the same when written out again
    g3, v3 = df.import_json(df.export_json("m", "mnist", 10, 3, g, v), "mnist", 10, 3)
    assert g3 == g and np.allclose(v3["v1"], v["v1"], rtol=0, atol=1e-15)


@pytest.mark.parametrize("scale", [1e-300, 1e-150, 1.0, 1e155, 1e200, 1.7e308])
def test_vectors_of_any_finite_scale_normalise(scale):
    """[1e155] * J and [1e200] * J used to pass the checks and then fail on every rerun (their
    squared norm overflows); [1e-300] * J was refused as zero length."""
    data = json.dumps(_doc(vectors={"v": [scale, -scale, 0, scale]}))
    _, v = _read(data)
    assert np.allclose(v["v"], np.array([1, -1, 0, 1]) / math.sqrt(3))


def test_limits_accept_the_largest_legal_file():
    """MAX_GROUPS groups that each hold the whole test set fit within MAX_BYTES (sized for MNIST)."""
    half = 5000
    groups = {f"g{i}": {"pos": list(range(half)), "neg": list(range(half, 2 * half))} for i in range(df.MAX_GROUPS)}
    vectors = {f"v{i}": [1e-17 * (i + 1)] * 64 for i in range(df.MAX_VECTORS)}
    data = df.export_json("mnist-z64", "mnist", 2 * half, 64, groups, vectors)
    assert len(data) <= df.MAX_BYTES
    g, v = df.import_json(data, "mnist", 2 * half, 64)
    assert len(g) == df.MAX_GROUPS and len(v) == df.MAX_VECTORS


# --------------------------------------------------------------------------- each refusal


def _bad(**fields) -> str:
    return json.dumps(_doc(**fields))


@pytest.mark.parametrize("data, match", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "UTF-8"),
    (b"[1, 2]", "not a directions file"),
    (json.dumps({"format": df.FILE_FORMAT, "version": 99}), "version 99"),
    (json.dumps({"format": df.FILE_FORMAT, "version": True, "dataset": "mnist"}), "version true"),
    (_bad(dataset="frey"), "made for dataset 'frey'"),
    (_bad(groups=[]), "must be JSON objects"),
    (_bad(groups={"a": {"pos": [1], "neg": [10]}}), "row 10 is outside"),
    (_bad(groups={"a": {"pos": [1, 2], "neg": [2]}}), "in both"),
    (_bad(groups={"a": {"pos": [], "neg": [2]}}), "non-empty list"),
    (_bad(groups={"a": {"pos": [1.5], "neg": [2]}}), "integer rows"),
    (_bad(groups={"a": {"pos": [True], "neg": [2]}}), "integer rows"),
    (_bad(groups={"a": {"pos": list(range(10)) * 2, "neg": [2]}}), "the test set only 10"),
    (_bad(groups={"": {"pos": [1], "neg": [2]}}), "a name must be"),
    (_bad(groups={f"g{i}": {"pos": [0], "neg": [1]} for i in range(df.MAX_GROUPS + 1)}), "groups; at most"),
    (_bad(vectors={f"v{i}": [1, 0, 0] for i in range(df.MAX_VECTORS + 1)}), "vectors; at most"),
    (_bad(vectors={"v": [1, 2]}), "expected 3 numbers"),
    (_bad(vectors={"v": "abc"}), "got 'abc'"),
    (_bad(vectors={"v": [1, "x", 2]}), "finite number"),
    (_bad(vectors={"v": [0, 0, 0]}), "zero length"),
    (_bad(vectors={"v": [1, 2, "INF"]}).replace('"INF"', "1e400"), "finite number"),
    (_bad(groups={f"g{i}": {"pos": [0], "neg": [1]} for i in range(20_000)}), f"20000 groups; at most {df.MAX_GROUPS}"),
    (_bad(vectors={"v": [float("nan"), 1, 2]}), "NaN is not a JSON number"),
    ('{"vectors": {"v": [1, 2, ' + "9" * 5000 + "]}}", "a number of 5000 characters"),
    (_bad(vectors={"v": [10**400, 1, 1]}), "a number of 401 characters"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (b" " * (df.MAX_BYTES + 1), "at most 2 MB"),
])
def test_bad_files(data, match):
    with pytest.raises(df.DirectionsFileError, match=match) as e:
        df.import_json(data, "mnist", 10, 3, filename="up.json")
    assert str(e.value).startswith("up.json") and "\n" not in str(e.value) and len(str(e.value)) <= MAX_MESSAGE


def test_long_names_and_filenames_are_clipped():
    """A 10 MB name used to come back as a 20-million-character message."""
    name = "x" * 10_000_000 + "\n"
    for data in (_bad(groups={name: {"pos": [1], "neg": [2]}}), _bad(dataset=name)):
        with pytest.raises(df.DirectionsFileError) as e:
            df.import_json(data, "mnist", 10, 3, filename="f\n" * 1000)
        msg = str(e.value)
        assert len(msg) <= MAX_MESSAGE and "\n" not in msg and msg.startswith("f?f?")


def test_too_big_is_refused_before_parsing(monkeypatch):
    def no_parse(*a, **k):
        raise AssertionError("parsed a file over the size limit")

    monkeypatch.setattr(df.json, "loads", no_parse)
    with pytest.raises(df.DirectionsFileError, match="at most 2 MB"):
        df.import_json(b"[" * (df.MAX_BYTES + 1), "mnist", 10, 3)


# --------------------------------------------------------------------------- hostile families

JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
                | st.integers(0, 2000).map(lambda k: 10**k) | st.sampled_from([1e155, 1e200, -1e308, 5e-324]))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda c: st.lists(c, max_size=6) | st.dictionaries(st.text(max_size=8), c,
                                                                                               max_size=6),
                           max_leaves=25)
NAMES = st.text(max_size=70) | st.sampled_from(["a", "my dir", "x" * 60, "x" * 61, "é+.-_ 9"])
ROWS = st.lists(st.integers(-3, N_TEST + 3) | JSON_SCALARS, max_size=8) | JSON_VALUES
VECTOR = (st.lists(st.floats(width=64) | st.integers(-(10**30), 10**30) | JSON_SCALARS, min_size=J - 1, max_size=J + 1)
          | st.lists(st.sampled_from([0.0, 1e-300, 1e155, 1e200, 1.7e308, -1.7e308, 5e-324]), min_size=J, max_size=J))


def _as_json(doc) -> str:
    """``doc`` as JSON text; Python writes NaN, Infinity and 2000-digit integers, which is the point."""
    return json.dumps(doc)


@PROPERTY
@given(st.binary(max_size=3000))
def test_any_bytes(data):
    _read(data)


@PROPERTY
@given(JSON_VALUES)
def test_any_json_value(doc):
    _read(_as_json(doc))


@PROPERTY
@given(st.dictionaries(NAMES, st.fixed_dictionaries({"pos": ROWS, "neg": ROWS}) | JSON_VALUES, max_size=14),
       st.dictionaries(NAMES, VECTOR | JSON_VALUES, max_size=18),
       st.sampled_from(["groups", "vectors", "both"]))
def test_hostile_groups_and_vectors(groups, vectors, which):
    fields = {"groups": groups, "vectors": vectors} if which == "both" else {which: groups if which == "groups"
                                                                              else vectors}
    _read(_as_json(_doc(**fields)))


@PROPERTY
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 3), st.binary(max_size=4)), max_size=8))
def test_edited_good_files(edits):
    """Byte-level edits (replace, insert, delete, duplicate a span) of a file the app wrote."""
    data = bytearray(df.export_json("m", "mnist", N_TEST, J, {"g": {"pos": [1, 2, 3], "neg": [4, 40]}},
                                    {"v": [0.5, -1.0, 2.0, 1e-3]}))
    for pos, op, blob in edits:
        i = pos % (len(data) + 1)
        if op == 0:
            data[i:i + len(blob)] = blob
        elif op == 1:
            data[i:i] = blob
        elif op == 2:
            del data[i:i + 1 + len(blob)]
        else:
            data[i:i] = data[i:i + 64]
    _read(bytes(data))


@PROPERTY
@given(st.integers(1, 300_000), st.sampled_from(["[", "{\"a\":"]), st.sampled_from(["groups", "vectors", "top"]))
def test_deep_nesting(depth, opener, where):
    closer = "]" if opener == "[" else "}"
    nest = opener * depth + "1" + closer * depth
    text = nest if where == "top" else json.dumps(_doc(**{where: {"x": 0}})).replace("0", nest, 1)
    _read(text)


@PROPERTY
@given(st.integers(1, 8000), st.sampled_from(["", "-", "0."]), st.sampled_from(["rows", "vector", "version"]))
def test_long_numbers(digits, prefix, where):
    number = prefix + "9" * digits
    template = {"rows": _doc(groups={"g": {"pos": ["N"], "neg": [1]}}), "vector": _doc(vectors={"v": [1, 1, 1, "N"]}),
                "version": {"format": df.FILE_FORMAT, "version": "N"}}[where]
    _read(json.dumps(template).replace('"N"', number))
