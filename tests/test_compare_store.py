"""The Compare tab's stored figures (explorer/compare_store.py) and the claims judged on them
(explorer/claims.py): round trips, families of bad files, and each verdict on figures with a
known answer."""

import copy
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer import claims, compare_store
from explorer.claims import NOT_SUPPORTED, NOT_TESTABLE, PARTLY, SUPPORTED, Model, judge
from explorer.compare import table_rows
from tests.explorer_fixtures import make_checkpoint
from trainer.checkpoint import load_checkpoint

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _result(energy=0.1, knn=0.9, sil=0.2, shift=0.5, conf=0.9, ent=3.2, sampled=None) -> dict:
    """A compare_model-shaped result with the figures the claims read set to the given values."""
    g = {"ks_mean": 0.05, "ks_max": 0.08, "energy_distance": energy, "kl_fit": 0.1, "mean_abs_max": 0.1,
         "sd_min": 0.9, "sd_max": 1.1, "mean": [0.0, 0.1], "sd": [1.0, 0.9], "ks": [0.05, 0.08]}
    out = {"n": 100, "z_dim": 2, "separation": {"knn_accuracy": knn, "knn_accuracy_sd": 0.004, "silhouette": sil},
           "gaussianity": g, "generation": {"confidence": conf, "confident_fraction": 0.8, "entropy_bits": ent},
           "reconstruction": {"sse_per_image": 20.0, "bce_per_image": 80.0},
           "robustness": {"spread": 3.0, **{k: {"level": 0.3, "shift": 3 * shift, "normalised_shift": shift,
                                                "knn_accuracy_clean": knn, "knn_accuracy_corrupted": knn - 0.1}
                                            for k in ("masking", "gaussian")}}}
    if sampled is not None:
        out["gaussianity_sampled"] = dict(g, energy_distance=sampled)
    return out


def _stored() -> compare_store.Stored:
    models = {n: {"checksum": f"sha256:{n}", "kind": k, "z_dim": 2, "title": n, "cpu_s": 1.0, "result": _result()}
              for n, k in (("v", "vae"), ("a", "ae"), ("d", "dae"))}
    return compare_store.Stored(models=models, ideal={2: {"gaussianity": _result()["gaussianity"]}},
                                classifier={"test_accuracy": 0.99}, seed=0)


# --- the file ------------------------------------------------------------------------------------

def test_round_trip_and_checksum_keyed_lookup(tmp_path):
    path = compare_store.write(tmp_path / "compare.json", _stored())
    got = compare_store.read(path)
    assert got == _stored()
    assert compare_store.figures_for(got, "v", "sha256:v") == _result()
    assert compare_store.figures_for(got, "v", "sha256:other") is None  # the file changed since
    assert compare_store.figures_for(got, "v", None) is None and compare_store.figures_for(got, "x", "sha256:x") is None


def test_infinite_kl_survives(tmp_path):
    s = _stored()
    s.models["a"]["result"]["gaussianity"]["kl_fit"] = math.inf  # a collapsed dimension
    got = compare_store.read(compare_store.write(tmp_path / "c.json", s))
    assert got.models["a"]["result"]["gaussianity"]["kl_fit"] == math.inf
    assert any(v == "inf" for _, _, v in table_rows(got.models["a"]["result"]))


def _assert_refused(path):
    with pytest.raises(compare_store.CompareFileError) as info:
        compare_store.read(path)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 400 and str(path) in msg


def _json_values():
    return st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
                        max_leaves=12)


def _paths(doc: dict, prefix=()):
    """Every (path, value) in a JSON document."""
    yield prefix, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


@pytest.fixture(scope="module")
def good_doc(tmp_path_factory) -> dict:
    return json.loads(compare_store.write(tmp_path_factory.mktemp("c") / "c.json", _stored()).read_text())


@FUZZ
@given(data=st.data(), value=_json_values())
def test_any_value_anywhere_is_read_or_refused_in_one_line(tmp_path, good_doc, data, value):
    """Replace any field of a good file with any JSON value: it is read (and then every table row
    and claim works on it) or refused with the one error type, one line."""
    doc = copy.deepcopy(good_doc)
    paths = [p for p, _ in _paths(doc) if p]
    where = data.draw(st.sampled_from(paths))
    node = doc
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = value
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    try:
        got = compare_store.read(path)
    except compare_store.CompareFileError as e:
        assert "\n" not in str(e)
        return
    results = [e["result"] for e in got.models.values()]
    for r in results:
        table_rows(r)
    judge([Model(n, e["kind"], e["result"]) for n, e in got.models.items()])


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_are_read_or_refused(tmp_path, raw):
    path = tmp_path / "c.json"
    path.write_bytes(raw)
    _assert_refused(path)


@pytest.mark.parametrize("content", [
    "[]", "{}", '{"format": "other", "version": 1, "models": {}, "ideal": {}, "classifier": {}}',
    '{"format": "vae-latent-explorer-compare", "version": 2, "models": {}, "ideal": {}, "classifier": {}}',
    '{"format": "vae-latent-explorer-compare", "version": 1, "models": {}, "ideal": {"two": {}}, "classifier": {}}',
    "[" * 100_000, '{"format": ' + "9" * 5000 + "}",
])
def test_foreign_deep_or_odd_files_refused(tmp_path, content):
    path = tmp_path / "c.json"
    path.write_text(content)
    _assert_refused(path)


def test_missing_oversized_and_folder_refused_unread(tmp_path, monkeypatch):
    _assert_refused(tmp_path / "none.json")
    (tmp_path / "dir.json").mkdir()
    _assert_refused(tmp_path / "dir.json")
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(compare_store.MAX_BYTES + 1)  # sparse: nothing is read to refuse it
    _assert_refused(big)


def test_writer_refuses_what_the_reader_would(tmp_path):
    s = _stored()
    del s.models["v"]["result"]["separation"]["knn_accuracy"]
    with pytest.raises(compare_store.CompareFileError, match="not written"):
        compare_store.write(tmp_path / "c.json", s)
    assert not (tmp_path / "c.json").exists()


def test_measure_gives_a_storable_entry(tmp_path):
    ck = load_checkpoint(make_checkpoint(tmp_path / "m.safetensors", "mnist", 2, kind="dae", n_test=80))
    images = np.random.default_rng(0).random((80, 28, 28)).astype(np.float32)
    entry = compare_store.measure(ck, images, classifier=None)
    assert entry["kind"] == "dae" and entry["checksum"] == ck.checksum and entry["z_dim"] == 2
    assert compare_store.fingerprint(ck) == ck.checksum
    assert {"separation", "gaussianity", "reconstruction", "robustness"} <= set(entry["result"])
    assert "gaussianity_sampled" not in entry["result"]  # an autoencoder has no q(z|x) to sample
    stored = compare_store.Stored(models={"m": entry}, ideal={}, classifier={})
    assert compare_store.read(compare_store.write(tmp_path / "c.json", stored)).models["m"] == json.loads(
        json.dumps(entry))


# --- the claims ----------------------------------------------------------------------------------

def _verdicts(**by_kind) -> dict[str, claims.Verdict]:
    return {v.key: v for v in judge([Model(f"m-{k}", k, r) for k, r in by_kind.items()])}


def test_claims_supported_when_the_numbers_say_so():
    v = _verdicts(vae=_result(energy=0.05, sampled=0.01, knn=0.80, sil=0.10, conf=0.95, ent=3.2),
                  ae=_result(energy=3.0, knn=0.85, sil=0.15, shift=0.6, conf=0.6, ent=2.0),
                  dae=_result(energy=2.5, knn=0.92, sil=0.30, shift=0.3, conf=0.7, ent=2.5))
    assert [v[k].verdict for k in ("gaussian", "separation", "robust", "generation")] == [SUPPORTED] * 4
    assert "0.05" in v["gaussian"].sentence and "0.01" in v["gaussian"].sentence  # the numbers are quoted
    assert all(s.sentence.count(". ") <= 1 for s in v.values())  # one sentence each


def test_claims_not_supported_when_the_numbers_say_otherwise():
    v = _verdicts(vae=_result(energy=3.0, knn=0.95, sil=0.4, conf=0.5, ent=1.0),
                  ae=_result(energy=0.1, knn=0.93, sil=0.35, shift=0.2, conf=0.9, ent=3.0),
                  dae=_result(energy=0.2, knn=0.80, sil=0.10, shift=0.5, conf=0.9, ent=3.0))
    assert v["gaussian"].verdict == NOT_SUPPORTED and v["separation"].verdict == NOT_SUPPORTED
    assert v["robust"].verdict == NOT_SUPPORTED and v["generation"].verdict == PARTLY  # no p(x) holds anyway


def test_ties_within_the_noise_are_not_wins():
    v = _verdicts(ae=_result(knn=0.900, sil=0.200, shift=0.50), dae=_result(knn=0.905, sil=0.21, shift=0.49))
    assert v["separation"].verdict == NOT_SUPPORTED and v["robust"].verdict == NOT_SUPPORTED


def test_separation_level_with_one_model_is_partly():
    """Ahead of the VAE but level with the AE (the shipped 20-D models): the DAE is not 'best'."""
    v = _verdicts(vae=_result(knn=0.957, sil=0.055), ae=_result(knn=0.967, sil=0.117),
                  dae=_result(knn=0.967, sil=0.113))
    assert v["separation"].verdict == PARTLY and "level with" in v["separation"].reason
    v = _verdicts(vae=_result(knn=0.90, sil=0.05), ae=_result(knn=0.92, sil=0.10), dae=_result(knn=0.95, sil=0.10))
    assert v["separation"].verdict == SUPPORTED  # ahead of each on one measure, behind on none


def test_mixed_numbers_are_partly():
    v = _verdicts(vae=_result(energy=0.1), ae=_result(energy=0.05, knn=0.9, sil=0.3), dae=_result(
        energy=2.0, knn=0.95, sil=0.1))
    assert v["gaussian"].verdict == PARTLY and v["separation"].verdict == PARTLY


def test_claims_without_the_kinds_they_need_are_not_testable():
    v = _verdicts(vae=_result(), ae=_result())
    assert v["separation"].verdict == NOT_TESTABLE and v["robust"].verdict == NOT_TESTABLE
    assert v["gaussian"].verdict != NOT_TESTABLE
    v = _verdicts(ae=_result(), dae=_result())
    assert v["gaussian"].verdict == NOT_TESTABLE and v["generation"].verdict == PARTLY
    assert [x.key for x in judge([])] == [k for k, _ in claims.CLAIMS]


def test_files_without_a_checksum_are_known_by_their_bytes(tmp_path):
    from tests.checkpoint_tools import read_raw, write_raw

    path = make_checkpoint(tmp_path / "old.safetensors", "mnist", 2)
    md, tensors = read_raw(path)
    write_raw(path, md, tensors, checksum=False)  # a file from before checksums
    ck = load_checkpoint(path)
    assert ck.checksum is None
    fp = compare_store.fingerprint(ck)
    assert fp.startswith("file-sha256:") and fp == compare_store.fingerprint(load_checkpoint(path))
    write_raw(path, dict(md, meta=md["meta"].replace('"title"', '"title2"')), tensors, checksum=False)
    assert compare_store.fingerprint(load_checkpoint(path)) != fp
