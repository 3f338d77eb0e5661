"""Property tests of the checkpoint reader over families of bad files (hypothesis).

Whatever the bytes, ``load_checkpoint`` / ``read_metadata`` raise :class:`CheckpointError` and
nothing else, and ``explorer.models.discover`` / ``load`` never raise; a file that loads gives
the app only values it can use (every meta consumer of explorer/ and the model card runs on it);
with a checksum, a changed bit either leaves the content identical or is refused.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer import directions, figures, models
from explorer.labels import label_scheme
from tests.checkpoint_tools import put, read_raw, rewrite, tiny_checkpoint, tiny_meta, write_raw
from trainer.checkpoint import CheckpointError, load_checkpoint, read_metadata
from views.model_card import _fmt

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
META_FIELDS = sorted(tiny_meta()) + ["something_else"]
CONFIG_FIELDS = ["image_shape", "hidden", "z_dim", "activation", "likelihood", "min_logvar"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A valid tiny checkpoint's bytes, its loaded content, and a folder to write variants into."""
    folder = tmp_path_factory.mktemp("fuzz")
    path = tiny_checkpoint(folder / "good.safetensors")
    return {"bytes": path.read_bytes(), "ck": load_checkpoint(path, with_state=True), "folder": folder}


def _outcome(path, with_state=False):
    """The loaded checkpoint, or the CheckpointError; anything else fails the test. The explorer's
    own entry points are checked to stay quiet on the same file."""
    try:
        ck = load_checkpoint(path, with_state=with_state)
    except CheckpointError as e:
        assert "\n" not in str(e) and path.name in str(e) and len(str(e)) < 1000
        ck = e
    try:
        read_metadata(path)
    except CheckpointError as e:
        assert path.name in str(e)
    entries = models.discover(path.parent)  # never raises; names the file when it cannot be used
    assert all(e.ok or e.path.name in e.error for e in entries)
    assert (models.load(path)[0] is None) == isinstance(ck, CheckpointError)
    return ck


def _exercise(ck) -> None:
    """Everything explorer/ and the model card do with meta, on a checkpoint that loaded (the
    plotly figures, 50 ms each, only for a history or label names other than the base file's)."""
    J, meta, usual = ck.config.z_dim, ck.meta, tiny_meta()
    changed = {k for k in ("history", "label_names") if json.dumps(meta.get(k)) != json.dumps(usual[k])}
    assert isinstance(ck.name, str)
    kl = models.kl_per_dim(ck)
    assert kl is None or (kl.shape == (J,) and np.isfinite(kl).all())
    mu = ck.arrays["test_mu"].numpy() if "test_mu" in ck.arrays else None
    for d in directions.builtin_directions(ck.arrays, meta, J, mu):
        assert math.isfinite(d.spread) and isinstance(directions.quality_text(d), str)
    history = meta.get("history") or []
    if "history" in changed:
        figures.training_curves_figure(history)
    if history:
        _fmt(history[-1].get("test_elbo"))
    emb, labels = ck.arrays.get("test_embedding"), ck.arrays.get("test_labels")
    scheme = label_scheme(str(meta.get("dataset") or ""), meta)
    if labels is not None:
        assert all(isinstance(scheme.describe(y), str) for y in labels.tolist())
    if "label_names" in changed and emb is not None and labels is not None and emb.shape == (labels.shape[0], 2):
        figures.map_figure(emb.numpy(), labels.numpy(), scheme)
    for v in (meta.get("metrics") or {}).values():
        _fmt(v)
    if meta.get("wall_time_s"):
        assert f"{meta['wall_time_s'] / 60:.1f}"
    json.dumps({"train_config": meta.get("train_config"), "provenance": meta.get("provenance")})
    str(meta.get("title") or "") + str(meta.get("dataset") or "")


def _tensors(ck) -> dict[str, torch.Tensor]:
    groups = {"model": ck.model.state_dict(), "arrays": ck.arrays, "state": ck.state or {}}
    return {f"{g}.{k}": v for g, ts in groups.items() for k, v in ts.items()}


def _same(a, b) -> bool:
    ta, tb = _tensors(a), _tensors(b)
    return (a.config == b.config and json.dumps(a.meta) == json.dumps(b.meta) and a.checksum == b.checksum
            and ta.keys() == tb.keys() and all(ta[k].dtype == tb[k].dtype and torch.equal(ta[k], tb[k]) for k in ta))


def _fresh(base):
    return put(base["folder"] / "x.safetensors", base["bytes"])


# --- metadata values ---------------------------------------------------------------------------

@FUZZ
@given(field=st.sampled_from(META_FIELDS), value=JSON)
def test_any_value_of_any_meta_field(base, field, value):
    ck = _outcome(rewrite(_fresh(base), meta={field: value}))
    if not isinstance(ck, CheckpointError):
        _exercise(ck)
        if field in ck.meta:
            # kept as written; compared as JSON text, since a NaN anywhere inside makes == fail
            assert json.dumps(ck.meta[field], sort_keys=True) == json.dumps(value, sort_keys=True)
        else:
            assert any(repr(field) in w for w in ck.warnings)  # dropped, and said so


@FUZZ
@given(value=JSON)
def test_meta_that_is_not_an_object_refused(base, value):
    ck = _outcome(rewrite(_fresh(base), md={"meta": json.dumps(value)}))
    assert isinstance(ck, CheckpointError) != isinstance(value, dict)


@FUZZ
@given(field=st.sampled_from(CONFIG_FIELDS), value=JSON)
def test_any_value_of_any_config_field(base, field, value):
    ck = _outcome(rewrite(_fresh(base), config={field: value}))
    if not isinstance(ck, CheckpointError):  # only a value that fits the weights can load
        out = ck.model.decode(torch.zeros(3, ck.config.z_dim))
        assert out.shape == (3, 12) and torch.isfinite(out).all()
        _exercise(ck)


@FUZZ
@given(value=JSON)
def test_config_that_is_not_a_full_config_refused(base, value):
    ck = _outcome(rewrite(_fresh(base), md={"model_config": json.dumps(value)}))
    assert isinstance(ck, CheckpointError)


DEEP = ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000, "[" * 40 + "]" * 40,
        "[" * 100_000]
HUGE = ["1" * 5000, "1e400", "-1e400", "NaN", "Infinity", "1" + "0" * 400]


@pytest.mark.parametrize("text", DEEP + [f'{{"title": {n}}}' for n in HUGE] + [f'{{"z_dim": {n}}}' for n in HUGE]
                         + [f'{{"kl_per_dim": [{n}, 1]}}' for n in HUGE] + [f'{{"dataset": {n}}}' for n in HUGE])
@pytest.mark.parametrize("key", ["meta", "model_config"])
def test_deep_nesting_and_huge_numbers(base, key, text):
    ck = _outcome(rewrite(_fresh(base), md={key: text}))
    if not isinstance(ck, CheckpointError):  # meta: a display field is dropped, an unknown one kept
        assert key == "meta" and bool(ck.warnings) == ('"title"' in text or '"kl_per_dim"' in text)
        _exercise(ck)


def test_deep_safetensors_header_refused(base):
    path = _fresh(base)
    header = b'{"__metadata__": {"format": "vae-latent-explorer"}, "t": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    put(path, len(header).to_bytes(8, "little") + header)
    assert isinstance(_outcome(path), CheckpointError)


# --- bytes -----------------------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_any_bit_flip_loads_identically_or_is_refused(base, data):
    raw = bytearray(base["bytes"])
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    path = put(base["folder"] / "x.safetensors", bytes(raw))
    ck = _outcome(path, with_state=True)
    assert isinstance(ck, CheckpointError) or _same(ck, base["ck"])


@FUZZ
@given(data=st.data())
def test_every_bit_flip_in_the_tensor_data_is_caught(base, data):
    raw = bytearray(base["bytes"])
    start = 8 + int.from_bytes(raw[:8], "little")
    bit = data.draw(st.integers(start * 8, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    path = put(base["folder"] / "x.safetensors", bytes(raw))
    with pytest.raises(CheckpointError, match="checksum mismatch: the file was modified or damaged"):
        load_checkpoint(path)


@FUZZ
@given(data=st.data())
def test_bit_flips_in_a_file_without_checksum_never_crash(base, data):
    path = _fresh(base)
    write_raw(path, *read_raw(path), checksum=False)
    raw = bytearray(path.read_bytes())
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    put(path, bytes(raw))
    ck = _outcome(path)
    if not isinstance(ck, CheckpointError):
        _exercise(ck)


@FUZZ
@given(blob=st.binary(max_size=3000) | st.builds(lambda n, b: n.to_bytes(8, "little") + b,
                                                 st.integers(0, 5000), st.binary(max_size=3000)))
def test_random_bytes_refused(base, blob):
    path = put(base["folder"] / "x.safetensors", blob)
    assert isinstance(_outcome(path), CheckpointError)


@FUZZ
@given(header=JSON)
def test_random_header_refused(base, header):
    h = json.dumps(header).encode()
    path = put(base["folder"] / "x.safetensors", len(h).to_bytes(8, "little") + h)
    assert isinstance(_outcome(path), CheckpointError)


# --- tensors ---------------------------------------------------------------------------------

DTYPES = [torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.int64, torch.uint8, torch.bool,
          torch.float8_e4m3fn]


@FUZZ
@given(data=st.data())
def test_wrong_dtypes(base, data):
    path = _fresh(base)
    tensors = read_raw(path)[1]
    name = data.draw(st.sampled_from(sorted(tensors)))
    dtype = data.draw(st.sampled_from(DTYPES))
    ck = _outcome(rewrite(path, tensors={name: tensors[name].to(dtype)}), with_state=True)
    if name.startswith("model.") or name.split(".", 1)[1].startswith(("test_mu", "test_logvar", "direction.")):
        assert isinstance(ck, CheckpointError) and "expected float32" in str(ck)
    if not isinstance(ck, CheckpointError):
        assert all(p.dtype == torch.float32 for p in ck.model.parameters())
        assert all(not v.is_floating_point() or v.dtype == torch.float32 for v in ck.arrays.values())
        _exercise(ck)


@FUZZ
@given(data=st.data())
def test_non_finite_values_refused(base, data):
    path = _fresh(base)
    tensors = read_raw(path)[1]
    name = data.draw(st.sampled_from(sorted(k for k, v in tensors.items() if v.is_floating_point() and v.numel())))
    t = tensors[name].clone()
    t.view(-1)[data.draw(st.integers(0, t.numel() - 1))] = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    ck = _outcome(rewrite(path, tensors={name: t}), with_state=True)
    assert isinstance(ck, CheckpointError) and "NaN or infinite" in str(ck)
