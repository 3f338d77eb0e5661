"""The app with hostile checkpoint folders (AppTest): bad files are named in the sidebar with
their reason while the good model works; wrong-typed display fields are dropped with a warning
and crash no tab; the Model card says when a file carries no checksum."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from tests.apptest import run_app
from tests.checkpoint_tools import put, read_raw, rewrite, write_raw
from tests.explorer_fixtures import make_checkpoint

VIEWS = ["Manifold grid", "Sliders", "Live", "Map", "Encode an upload", "Draw", "Interpolate", "Directions",
         "Model card"]


def _bad_folder(folder: Path) -> dict[str, str]:
    """One good checkpoint and one file per way of being bad: file name -> words of its message."""
    good = make_checkpoint(folder / "good.safetensors", "mnist", 2)
    data = good.read_bytes()
    bad = {}
    for name, md, why in (
        ("meta-list", {"meta": "[1, 2]"}, "meta must be a JSON object"),
        ("meta-null", {"meta": "null"}, "meta must be a JSON object"),
        ("meta-number", {"meta": "3.5"}, "meta must be a JSON object"),
        ("meta-string", {"meta": '"x"'}, "meta must be a JSON object"),
        ("meta-deep", {"meta": "[" * 100_000 + "]" * 100_000}, "nested too deeply"),
        ("config-deep", {"model_config": '{"a":' * 100_000 + "1" + "}" * 100_000}, "nested too deeply"),
        ("zdim-huge", {"model_config": json.dumps({**json.loads(read_raw(good)[0]["model_config"]), "z_dim": 10**6})},
         "z_dim must be in"),
    ):
        rewrite(put(folder / f"{name}.safetensors", data), md=md)
        bad[name] = why
    rewrite(put(folder / "logvar-abc.safetensors", data), config={"min_logvar": "abc"})
    bad["logvar-abc"] = "min_logvar must be a finite number"
    w = read_raw(good)[1]["model.fc_mu.weight"].clone()
    rewrite(put(folder / "weights-f64.safetensors", data), tensors={"model.fc_mu.weight": w.double()})
    bad["weights-f64"] = "expected float32"
    w[0, 0] = float("nan")
    rewrite(put(folder / "weights-nan.safetensors", data), tensors={"model.fc_mu.weight": w})
    bad["weights-nan"] = "NaN or infinite"
    flipped = bytearray(data)
    flipped[-3] ^= 0x10
    put(folder / "flipped.safetensors", bytes(flipped))
    bad["flipped"] = "checksum mismatch: the file was modified or damaged"
    put(folder / "truncated.safetensors", data[: len(data) // 2])
    bad["truncated"] = "truncated or corrupt"
    os.mkfifo(folder / "fifo.safetensors")
    bad["fifo"] = "not a regular file"
    (folder / "dir.safetensors").mkdir()
    bad["dir"] = "not a regular file"
    (folder / "dangling.safetensors").symlink_to(folder / "nowhere")
    bad["dangling"] = "no such checkpoint file"
    return bad


def test_good_model_shown_and_each_bad_file_named(tmp_path, monkeypatch):
    bad = _bad_folder(tmp_path)
    at = run_app(tmp_path, monkeypatch)
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="model").options == ["good"]
    assert len(at.get("image")) == 1  # the good model's manifold
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == len(bad)
    for name, why in bad.items():
        line = next((e for e in errors if f"{name}.safetensors" in e), None)
        assert line is not None and why in line and "\n" not in line, (name, line)


def _wrong_display_fields(path: Path) -> list[str]:
    """Rewrite ``path`` (no checksum, like the shipped files) with every display field of a
    wrong type; the field names."""
    wrong = {"title": ["x"], "name": 3, "metrics": {"test_elbo": {"a": 1}}, "history": [1, 2],
             "kl_per_dim": "abc", "label_names": [1, 2], "wall_time_s": "soon", "train_config": [1],
             "provenance": 5, "directions": {"smile": ["bad"]}, "n_test": -1}
    md, tensors = read_raw(path)
    md["meta"] = json.dumps({**json.loads(md["meta"]), **wrong})
    z = tensors["arrays.test_mu"].shape[1]
    tensors["arrays.direction.smile.mean_difference"] = torch.ones(z) / z**0.5
    write_raw(path, md, tensors, checksum=False)
    return list(wrong)


@pytest.mark.parametrize("dataset, z_dim", [("mnist", 2), ("frey", 3)])
def test_wrong_typed_display_fields_dropped_and_every_tab_works(tmp_path, monkeypatch, dataset, z_dim):
    path = make_checkpoint(tmp_path / "odd.safetensors", dataset, z_dim, n_test=20)
    fields = _wrong_display_fields(path)
    at = run_app(tmp_path, monkeypatch)
    warnings = [w.value for w in at.sidebar.warning]
    for f in fields:
        assert any(f"odd.safetensors: meta field '{f}' dropped" in w for w in warnings), f
    for view in VIEWS:
        at.session_state["view"] = view
        at.run()
        assert not at.exception, (view, [e.value for e in at.exception])
    assert any("no checksum" in c.value for c in at.caption)  # the Model card (open last)


def test_model_card_notes_only_a_missing_checksum(tmp_path, monkeypatch):
    make_checkpoint(tmp_path / "new.safetensors", "mnist", 2)
    old = make_checkpoint(tmp_path / "old.safetensors", "mnist", 5)
    write_raw(old, *read_raw(old), checksum=False)
    for name, noted in (("new", False), ("old", True)):
        at = run_app(tmp_path, monkeypatch, name)
        at.session_state["view"] = "Model card"
        at.run()
        assert not at.exception
        assert any("carries no checksum" in c.value for c in at.caption) == noted, name
