"""The MNIST digit classifier that judges decoded samples: it learns, its file round-trips
bit for bit, every corrupt or foreign file is refused in one line (or, if a flipped byte changes
nothing that matters, loads the very same model), and the shipped one is accurate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from tests.synthetic_digits import TINY, prototypes, synthetic_digits, tiny_classifier
from trainer.checkpoint import list_checkpoints
from trainer.digit_classifier import (
    DEFAULT_PATH,
    MAX_FILE_BYTES,
    DigitClassifierConfig,
    DigitClassifierError,
    accuracy,
    fit_classifier,
    load_classifier,
    read_classifier_metadata,
    save_classifier,
)


def test_learns_synthetic_digits_and_is_seeded():
    clf = tiny_classifier()
    assert clf.meta["test_accuracy"] == 1.0 and len(clf.meta["history"]) == TINY.epochs
    x, y = synthetic_digits(100, seed=5)
    assert accuracy(clf, x, y) == 1.0
    p = clf.probabilities(prototypes())
    assert p.shape == (10, 10) and torch.allclose(p.sum(1), torch.ones(10))
    assert torch.equal(p.argmax(1), torch.arange(10))
    assert torch.equal(clf.predict(x.reshape(100, -1).float() / 255), y)  # floats (N, 784) == uint8 (N, 28, 28)
    # Same config and data, same weights; the caller's global RNG is not touched.
    state = torch.get_rng_state()
    small = DigitClassifierConfig(channels=(2, 2), hidden=4, epochs=1, batch_size=100, max_shift=2)
    a = fit_classifier(x, y, x, y, small)
    b = fit_classifier(x, y, x, y, small)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_probabilities_refuse_wrong_shapes():
    clf = tiny_classifier()
    for bad in (torch.zeros(3, 28, 20), torch.zeros(3, 100), torch.zeros(784)):
        with pytest.raises(ValueError, match="MNIST images"):
            clf.probabilities(bad)
    assert clf.probabilities(torch.zeros(0, 784)).shape == (0, 10)


def test_round_trip_is_bit_exact(tmp_path):
    clf = tiny_classifier()
    path = save_classifier(tmp_path / "c.safetensors", clf)
    back = load_classifier(path)
    assert back.config == clf.config and not back.training
    assert all(torch.equal(back.state_dict()[k], v) for k, v in clf.state_dict().items())
    assert back.meta["test_accuracy"] == clf.meta["test_accuracy"] and back.meta["history"] == clf.meta["history"]
    x = torch.rand(7, 784)
    assert torch.equal(back.probabilities(x), clf.probabilities(x))
    config, meta = read_classifier_metadata(path)
    assert config == clf.config and meta["sha256"] == back.meta["sha256"]
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary left behind


@pytest.fixture
def saved(tmp_path):
    path = save_classifier(tmp_path / "c.safetensors", tiny_classifier())
    return path, path.read_bytes()


def _same_model(a, b) -> bool:
    return (a.config == b.config and a.meta == b.meta
            and all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items()))


def test_any_flipped_or_cut_byte_is_refused_or_harmless(saved):
    """A seeded family of damaged copies: single bytes replaced anywhere (header and weights)
    and truncations. Each is refused with the one error type and the file's name, or loads
    the identical model (e.g. a changed padding space in the header)."""
    path, data = saved
    ref = load_classifier(path)
    g = np.random.default_rng(0)
    header_len = 8 + int.from_bytes(data[:8], "little")
    positions = list(g.integers(0, header_len, 150)) + list(g.integers(header_len, len(data), 60))
    refused = 0
    for pos in positions:
        damaged = bytearray(data)
        damaged[pos] = (damaged[pos] + int(g.integers(1, 256))) % 256
        path.write_bytes(bytes(damaged))
        try:
            assert _same_model(load_classifier(path), ref), f"byte {pos} changed the model silently"
        except DigitClassifierError as e:
            assert "c.safetensors" in str(e) and "\n" not in str(e)
            refused += 1
    assert refused > 0.9 * len(positions)
    for cut in sorted(set(g.integers(0, len(data), 30).tolist())):
        path.write_bytes(data[:cut])
        with pytest.raises(DigitClassifierError, match="c.safetensors"):
            load_classifier(path)


def _rewrite(path, config=None, meta=None, md=None, tensors=None):
    """Re-save ``path`` with parts of its header or tensors replaced (the sha256 left as it was)."""
    with safe_open(str(path), "pt") as f:
        old_md = dict(f.metadata())
        old_t = {k: f.get_tensor(k) for k in f.keys()}
    if config is not None:
        old_md["config"] = json.dumps({**json.loads(old_md["config"]), **config})
    if meta is not None:
        old_md["meta"] = json.dumps({**json.loads(old_md["meta"]), **meta})
    old_md.update(md or {})
    new_t = old_t if tensors is None else tensors(old_t)
    path.write_bytes(st_save(new_t, metadata=old_md))


@pytest.mark.parametrize("change, message", [
    ({"md": {"format": "vae-latent-explorer"}}, "not a vae-latent-explorer-digit-classifier file"),
    ({"md": {"format_version": "2"}}, "format version '2'"),
    ({"md": {"config": "{not json"}}, "bad config or metadata"),
    ({"md": {"meta": "[1, 2]"}}, "bad config or metadata"),
    ({"config": {"depth": 3}}, "unknown classifier config keys"),
    ({"config": {"hidden": 16.0}}, "hidden must be an integer"),
    ({"config": {"channels": [4]}}, "channels must be two integers"),
    ({"config": {"lr": float("nan")}}, "lr must be a finite number"),
    ({"config": {"hidden": 10**9}}, "weights do not fit the config"),  # refused before allocating 10**9 units
    ({"meta": {"test_accuracy": 0.999}}, "sha256 differs"),
    ({"tensors": lambda t: {k: v for k, v in t.items() if k != "model.fc2.bias"}}, "model.fc2.bias"),
    ({"tensors": lambda t: {**t, "model.extra": torch.zeros(1)}}, "model.extra"),
    ({"tensors": lambda t: {**t, "model.fc2.bias": torch.zeros(11)}}, r"model.fc2.bias \(11,\)"),
    ({"tensors": lambda t: {**t, "model.fc2.bias": torch.zeros(10, dtype=torch.float64)}}, "float64"),
    ({"tensors": lambda t: {**t, "model.fc2.bias": t["model.fc2.bias"] + 1}}, "sha256 differs"),
])
def test_foreign_or_tampered_files_refused(saved, change, message):
    path, _ = saved
    _rewrite(path, **change)
    with pytest.raises(DigitClassifierError, match=message) as e:
        load_classifier(path)
    assert "c.safetensors" in str(e.value) and "\n" not in str(e.value)


def test_missing_oversized_and_non_files_refused(tmp_path):
    with pytest.raises(DigitClassifierError, match="no such classifier file"):
        load_classifier(tmp_path / "nope.safetensors")
    big = tmp_path / "big.safetensors"
    with open(big, "wb") as f:  # sparse: refused by its size before a byte is read
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(DigitClassifierError, match="more than a classifier file can be"):
        load_classifier(big)
    with pytest.raises(DigitClassifierError, match="not a readable safetensors file"):
        load_classifier(tmp_path)
    (tmp_path / "zeros.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(DigitClassifierError, match="zeros.safetensors"):
        load_classifier(tmp_path / "zeros.safetensors")


def test_shipped_classifier_is_accurate_small_and_not_a_model():
    """The shipped file states >= 98% MNIST test accuracy, stays under 1 MB, and lives where
    the app's checkpoint discovery (``checkpoints/*.safetensors``) does not list it."""
    config, meta = read_classifier_metadata(DEFAULT_PATH)
    assert meta["test_accuracy"] >= 0.98 and meta["test_n"] == 10000 and meta["train_n"] == 60000
    assert meta["dataset"] == "mnist" and set(meta["provenance"]["files"]) >= {"train_images", "test_labels"}
    assert DEFAULT_PATH.stat().st_size < 1 << 20
    assert DEFAULT_PATH not in list_checkpoints(DEFAULT_PATH.parent.parent)
    clf = load_classifier()
    assert clf.config == config
    assert torch.equal(clf.predict(torch.zeros(1, 784)), clf.predict(torch.zeros(1, 28, 28)))


@pytest.mark.slow
def test_shipped_classifier_reproduces_its_test_accuracy(shared_data_dir):
    from trainer.data import load_dataset

    clf = load_classifier()
    ds = load_dataset("mnist", shared_data_dir)
    measured = accuracy(clf, ds.test_x, ds.test_y)
    # Within 3 of 10000 images: float rounding may differ across CPUs and thread counts.
    assert abs(measured - clf.meta["test_accuracy"]) <= 3e-4 and measured >= 0.985
