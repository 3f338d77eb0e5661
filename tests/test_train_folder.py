"""Training on an image folder through its on-disk cache (trainer.folder_cache wired into trainer.train).

The CLI builds the cache once and reuses it, a corrupt image is one warning line, and the loop reads
batches from the memory map with the same result as the whole set in memory. Caches go to tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer import run_setup
from trainer import train as train_module
from trainer.__main__ import main
from trainer.checkpoint import load_checkpoint
from trainer.config import TrainConfig
from trainer.data import DataWarning
from trainer.memmap_images import BatchInput, MemmapImages, model_input

from .test_folder_cache import SIZE, make_pngs


def _train_args(folder, cache, out) -> list[str]:
    return ["train", "--dataset", "folder", "--image-folder", str(folder), "--image-size", *map(str, SIZE),
            "--cache-dir", str(cache), "--out", str(out), "--hidden", "16", "--z-dim", "2", "--epochs", "2",
            "--batch-size", "32", "--iwae-k", "5", "--no-umap", "--no-progress", "--device", "cpu",
            "--matmul-precision", "highest"]


def test_cli_trains_from_the_cache_built_once_with_a_corrupt_image(tmp_path, capsys):
    """``python -m trainer train --dataset folder``: the folder is decoded once into --cache-dir (the
    corrupt file skipped and named in one warning line), the next run reuses the cache untouched, and
    the trainer reads batches from the memory map: the same weights as training on the whole set in memory."""
    folder, cache = tmp_path / "imgs", tmp_path / "cache"
    n_good = make_pngs(folder, counts=(("a", 40), ("b", 30)), loose=2)
    (folder / "b" / "broken.png").write_bytes((folder / "a" / "000.png").read_bytes()[:60])
    files = []
    for run in ("first", "second"):
        with pytest.warns(DataWarning) as rec:
            assert main(_train_args(folder, cache, tmp_path / f"{run}.safetensors")) == 0
        msgs = [str(r.message) for r in rec if issubclass(r.category, DataWarning)]
        assert len(msgs) == 1 and "skipped 1 unreadable image file(s): b/broken.png (" in msgs[0], msgs
        files.append({p.relative_to(cache): p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()})
    assert files[0] == files[1] and sum(p.name == "images.npy" for p in files[0]) == 1  # built once, reused
    ck = load_checkpoint(tmp_path / "first.safetensors")
    prov = ck.meta["provenance"]
    assert prov["n_images"] == n_good and ck.meta["n_train"] + ck.meta["n_test"] == n_good
    assert Path(prov["cache"]["path"]).parent.parent == cache / "folders"
    assert ck.meta["label_names"] == ["a", "b"] and ck.config.image_shape == SIZE
    assert capsys.readouterr().out.strip().splitlines() == [str(tmp_path / f"{r}.safetensors") for r in ("first",
                                                                                                          "second")]
    _same_weights(load_checkpoint(tmp_path / "second.safetensors"), ck)


def _same_weights(a, b) -> None:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(v, sb[k]) for k, v in sa.items())


def test_training_reads_batches_from_the_memory_map_like_the_in_memory_set(tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    make_pngs(folder, counts=(("a", 40), ("b", 30)), loose=2)
    cfg = dict(dataset="folder", image_folder=str(folder), image_size=SIZE, cache_dir=str(tmp_path / "c"),
               hidden=(16,), z_dim=2, epochs=2, batch_size=16, iwae_k=0, umap=False, progress=False)
    mcfg = run_setup.model_config(TrainConfig(**cfg))
    data = run_setup.load_train_data(TrainConfig(**cfg), mcfg)
    assert isinstance(data.x_train, BatchInput)  # never the whole set as floats
    mapped = load_checkpoint(train_module.train(TrainConfig(**cfg, out=str(tmp_path / "map.safetensors"))))
    seen = []

    def whole(x):  # the in-memory path: the training split loaded and converted at once
        seen.append(type(x))
        return model_input(x.load())

    monkeypatch.setattr(run_setup, "model_input", whole)
    memory = load_checkpoint(train_module.train(TrainConfig(**cfg, out=str(tmp_path / "mem.safetensors"))))
    assert seen == [MemmapImages]
    _same_weights(mapped, memory)
    assert mapped.meta["history"] == [dict(h, seconds=m["seconds"]) for h, m in
                                      zip(memory.meta["history"], mapped.meta["history"])]
