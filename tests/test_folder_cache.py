"""The on-disk folder cache (trainer/folder_cache.py) and its memory-mapped reader (trainer/memmap_images.py).

Every dataset read through the cache is compared with ``load_image_folder`` on the same folder: same
pixels, labels, label names, split and content hash. All caches go to tmp_path (never ~/.cache).
Training from the cache is tests/test_train_folder.py.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.test_data import make_folder
from trainer import folder_cache
from trainer.data import DataError, DataWarning
from trainer.folder_cache import default_cache_dir, folder_cache_home, open_folder_dataset, read_cache
from trainer.image_folder import load_image_folder
from trainer.memmap_images import BatchInput, MemmapImages, model_input

SIZE = (8, 6)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def make_pngs(root: Path, counts=(("a", 70), ("b", 65)), loose: int = 3, seed: int = 0) -> int:
    """Random 12x10 grey PNGs: one sub-folder per class plus ``loose`` unlabelled ones; returns the count."""
    rng = np.random.default_rng(seed)
    for cls, k in counts:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(k):
            Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(root / cls / f"{i:03d}.png")
    for i in range(loose):
        Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(root / f"loose{i}.png")
    return sum(k for _, k in counts) + loose


def open_quiet(folder, tmp_path, size=SIZE, **kw):
    kw.setdefault("cache_dir", tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return open_folder_dataset(folder, size, progress=False, **kw)


def assert_same_as_loader(ds, folder, size=SIZE, test_fraction=0.1, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        ref = load_image_folder(folder, size, test_fraction=test_fraction, seed=seed)
    assert torch.equal(ds.train_x.load(), ref.train_x) and torch.equal(ds.test_x, ref.test_x)
    assert torch.equal(ds.train_y, ref.train_y) and torch.equal(ds.test_y, ref.test_y)
    assert ds.label_names == ref.label_names and ds.image_shape == ref.image_shape
    for k in ("n_images", "n_train", "n_test", "content_sha256", "split", "conversion", "root"):
        assert ds.provenance[k] == ref.provenance[k], k
    assert [s.split(" (")[0] for s in ds.provenance["skipped"]] == [s.split(" (")[0] for s in ref.provenance["skipped"]]


def cache_entries(ds_or_home) -> list[str]:
    home = ds_or_home.cache_path.parent if hasattr(ds_or_home, "cache_path") else ds_or_home
    return sorted(p.name for p in home.iterdir() if p.name != ".lock")


@pytest.mark.parametrize("workers", [1, 2])
def test_build_matches_the_in_memory_loader(tmp_path, workers):
    folder = tmp_path / "imgs"
    make_folder(folder)  # assorted formats and modes plus one broken file
    make_pngs(folder / "b_class" / "more", counts=(("x", 70),), loose=0)  # enough files for the process pool
    make_pngs(folder / "a_class", counts=(("a", 2), ("a.b", 2)), loose=2)  # 'a/..' before 'a.b/..' before 'a.png'
    (folder / "a_class" / ".hidden.png").write_bytes((folder / "a_class" / "red.png").read_bytes())
    (folder / "a_class" / "link.png").symlink_to(folder / "a_class" / "red.png")  # followed, like rglob
    (folder / "a_class" / "linked_dir").symlink_to(folder / "b_class" / "more")  # not descended, like rglob
    (folder / "c_link").symlink_to(folder / "b_class" / "nested")  # a class folder that is a symlink
    with pytest.warns(DataWarning, match=r"skipped 1 unreadable.*broken\.png") as rec:
        ds = open_folder_dataset(folder, (28, 24), test_fraction=0.2, seed=5, cache_dir=tmp_path / "c",
                                 workers=workers, progress=False)
    assert len(rec) == 1 and "\n" not in str(rec[0].message)
    assert ds.built and ds.name == "folder" and ds.cache_path.parent.parent == tmp_path / "c" / "folders"
    assert_same_as_loader(ds, folder, (28, 24), test_fraction=0.2, seed=5)
    assert ds.train_x.shape == (ds.provenance["n_train"], 28, 24) and ds.test_x.dtype == torch.uint8
    assert cache_entries(ds) == [ds.cache_path.name]  # no temporary folder left behind


def test_unchanged_folder_is_reused_without_decoding(tmp_path, monkeypatch):
    make_pngs(tmp_path / "imgs")
    first = open_quiet(tmp_path / "imgs", tmp_path)
    calls = []
    real = folder_cache._decode
    monkeypatch.setattr(folder_cache, "_decode", lambda fp, size: calls.append(1) or real(fp, size))
    again = open_quiet(tmp_path / "imgs", tmp_path, workers=1)
    assert first.built and not again.built and calls == []
    assert again.cache_path == first.cache_path
    assert_same_as_loader(again, tmp_path / "imgs")


def _add(folder):
    Image.fromarray(np.full((5, 5), 7, np.uint8)).save(folder / "a" / "new.png")


def _remove(folder):
    (folder / "b" / "010.png").unlink()


def _modify(folder):
    Image.fromarray(np.full((12, 10), 200, np.uint8)).save(folder / "a" / "005.png")


def _touch(folder):  # same bytes, new mtime: the key is metadata, so this rebuilds too
    p = folder / "a" / "007.png"
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _rename(folder):
    (folder / "a" / "003.png").rename(folder / "a" / "zzz.png")


def _move_to_other_class(folder):
    (folder / "a" / "004.png").rename(folder / "b" / "from_a.png")


def _new_class(folder):
    (folder / "c").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "c" / "0.png")


@pytest.mark.parametrize("change", [_add, _remove, _modify, _touch, _rename, _move_to_other_class, _new_class])
def test_changed_folder_is_rebuilt(tmp_path, change):
    folder = tmp_path / "imgs"
    make_pngs(folder)
    before = open_quiet(folder, tmp_path)
    change(folder)
    after = open_quiet(folder, tmp_path)
    assert after.built and after.cache_path != before.cache_path
    assert cache_entries(after) == [after.cache_path.name]  # the superseded cache is gone
    assert_same_as_loader(after, folder)  # the new contents, not the old cache's


def test_other_image_size_or_converter_is_another_cache(tmp_path, monkeypatch):
    make_pngs(tmp_path / "imgs")
    small = open_quiet(tmp_path / "imgs", tmp_path, size=(8, 6))
    big = open_quiet(tmp_path / "imgs", tmp_path, size=(16, 12))
    assert big.built and big.train_x.shape[1:] == (16, 12)
    assert cache_entries(big) == sorted([small.cache_path.name, big.cache_path.name])  # both sizes kept
    assert not open_quiet(tmp_path / "imgs", tmp_path, size=(8, 6)).built
    monkeypatch.setattr(folder_cache, "_CONVERTER", (folder_cache._decode,))  # a changed conversion
    assert open_quiet(tmp_path / "imgs", tmp_path, size=(8, 6)).built


def corrupt_files(folder: Path, rng: np.random.Generator, n: int) -> list[str]:
    """``n`` image files that cannot be decoded, of seeded random kinds; returns their relative paths."""
    template = (folder / "a" / "000.png").read_bytes()
    names = []
    for i in range(n):
        kind = rng.integers(4)
        if kind == 0:  # truncated PNG (cut inside the image data)
            raw = template[: int(rng.integers(1, len(template) // 2))]
        elif kind == 1:  # random bytes
            raw = rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
        elif kind == 2:  # a PNG signature followed by garbage
            raw = template[:8] + rng.integers(0, 256, 50, dtype=np.uint8).tobytes()
        else:  # text with an image extension
            raw = b"not an image\n" * int(rng.integers(0, 5))
        ext = (".png", ".jpg", ".gif", ".webp", ".tif")[int(rng.integers(5))]
        name = f"b/bad{i:02d}{ext}"
        (folder / name).write_bytes(raw)
        names.append(name)
    return names


@pytest.mark.parametrize("seed", range(3))
def test_corrupt_images_are_skipped_and_listed_in_one_line(tmp_path, seed):
    folder = tmp_path / "imgs"
    n_good = make_pngs(folder)
    bad = corrupt_files(folder, np.random.default_rng(seed), 12)
    for attempt in range(2):  # the build and a reuse both say so
        with pytest.warns(DataWarning) as rec:
            ds = open_folder_dataset(folder, SIZE, cache_dir=tmp_path / "c", progress=False, workers=2)
        assert ds.built == (attempt == 0)
        msgs = [str(r.message) for r in rec if issubclass(r.category, DataWarning)]
        assert len(msgs) == 1 and "\n" not in msgs[0]
        assert "skipped 12 unreadable image file(s)" in msgs[0] and msgs[0].endswith("and 2 more")
        assert sum(name in msgs[0] for name in bad) == 10
        assert sorted(s.split(" (")[0] for s in ds.provenance["skipped"]) == sorted(bad)
        assert ds.provenance["n_images"] == n_good
    assert_same_as_loader(ds, folder)


def test_a_folder_without_readable_images_is_one_error_and_no_cache(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.png").write_bytes(b"garbage")
    with pytest.warns(DataWarning, match="skipped 1"), pytest.raises(DataError, match="no readable images"):
        open_folder_dataset(folder, SIZE, cache_dir=tmp_path / "c", progress=False)
    assert cache_entries(folder_cache_home(folder, tmp_path / "c")) == []
    (folder / "a" / "x.txt").write_text("no image extension")
    (folder / "a" / "x.png").unlink()
    with pytest.raises(DataError, match="no readable images"):
        open_folder_dataset(folder, SIZE, cache_dir=tmp_path / "c", progress=False)


def test_bad_arguments_and_a_full_disk_are_one_line_errors(tmp_path, monkeypatch):
    make_pngs(tmp_path / "imgs", counts=(("a", 3),), loose=0)
    with pytest.raises(DataError, match="not a folder"):
        open_folder_dataset(tmp_path / "nope", SIZE, cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="image_size"):
        open_folder_dataset(tmp_path / "imgs", (0, 5), cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="test_fraction"):
        open_folder_dataset(tmp_path / "imgs", SIZE, test_fraction=1.0, cache_dir=tmp_path / "c")
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(DataError, match=r"cannot write the image cache \((FileExistsError|NotADirectoryError)"):
        open_folder_dataset(tmp_path / "imgs", SIZE, cache_dir=tmp_path / "a_file")
    monkeypatch.setattr(folder_cache.shutil, "disk_usage", lambda p: type("U", (), {"free": 10})())
    with pytest.raises(DataError, match=r"GB needed for the image cache.*pass another cache_dir"):
        open_folder_dataset(tmp_path / "imgs", SIZE, cache_dir=tmp_path / "c")


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_build_leaves_nothing_trusted(tmp_path, monkeypatch, workers):
    folder = tmp_path / "imgs"
    make_pngs(folder)
    real, calls = folder_cache._decode, []

    def interrupted(fp, size):  # Ctrl-C part-way (in each worker, for the pool)
        calls.append(1)
        if len(calls) == 40:
            raise KeyboardInterrupt
        return real(fp, size)

    monkeypatch.setattr(folder_cache, "_decode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        open_quiet(folder, tmp_path, workers=workers)
    home = folder_cache_home(folder, tmp_path / "cache")
    assert cache_entries(home) == []  # the temporary folder was removed, nothing renamed into place
    monkeypatch.setattr(folder_cache, "_decode", real)
    ds = open_quiet(folder, tmp_path, workers=workers)
    assert ds.built
    assert_same_as_loader(ds, folder)


def test_killed_build_is_never_trusted(tmp_path):
    """A build killed without any cleanup (os._exit part-way, as kill -9 would) leaves a temporary
    folder that is not read, and the next open rebuilds and removes it."""
    folder, cache = tmp_path / "imgs", tmp_path / "cache"
    make_pngs(folder)
    script = (
        "import os, sys; from trainer import folder_cache as fc\n"
        "real, n = fc._decode, [0]\n"
        "def dying(fp, size):\n"
        "    n[0] += 1\n"
        "    if n[0] == 60: os._exit(9)\n"
        "    return real(fp, size)\n"
        "fc._decode = dying\n"
        "fc.open_folder_dataset(sys.argv[1], (8, 6), cache_dir=sys.argv[2], workers=1, progress=False)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(folder), str(cache)], cwd=PROJECT_ROOT, timeout=120)
    assert proc.returncode == 9
    home = folder_cache_home(folder, cache)
    left = cache_entries(home)
    assert len(left) == 1 and left[0].startswith(".tmp-")  # half written, under a name never read
    ds = open_quiet(folder, tmp_path, workers=1)
    assert ds.built and cache_entries(ds) == [ds.cache_path.name]
    assert_same_as_loader(ds, folder)


def _damage_meta(path, rng):
    raw = (path / "meta.json").read_bytes()
    (path / "meta.json").write_bytes(raw[: int(rng.integers(0, len(raw)))])


def _damage_images(path, rng):
    raw = (path / "images.npy").read_bytes()
    (path / "images.npy").write_bytes(raw[: int(rng.integers(0, len(raw)))])


def _damage_labels(path, rng):
    raw = (path / "labels.npy").read_bytes()
    (path / "labels.npy").write_bytes(raw[: int(rng.integers(0, len(raw)))])


def _wrong_dtype(path, rng):
    np.save(path / "labels.npy", np.load(path / "labels.npy").astype(np.int32))


def _wrong_shape(path, rng):
    np.save(path / "images.npy", np.zeros((3, 8, 6), np.uint8))


def _meta_not_a_dict(path, rng):
    (path / "meta.json").write_text(["[]", "null", '"x"', "{}", '{"n_images": "many"}'][int(rng.integers(5))])


def _missing_file(path, rng):
    (path / ("images.npy", "labels.npy", "meta.json")[int(rng.integers(3))]).unlink()


@pytest.mark.parametrize("damage", [_damage_meta, _damage_images, _damage_labels, _wrong_dtype, _wrong_shape,
                                    _meta_not_a_dict, _missing_file])
@pytest.mark.parametrize("seed", range(2))
def test_damaged_cache_is_rebuilt_not_trusted(tmp_path, damage, seed):
    make_pngs(tmp_path / "imgs")
    first = open_quiet(tmp_path / "imgs", tmp_path)
    damage(first.cache_path, np.random.default_rng(seed))
    assert read_cache(first.cache_path) is None
    again = open_quiet(tmp_path / "imgs", tmp_path)
    assert again.built and again.cache_path == first.cache_path
    assert_same_as_loader(again, tmp_path / "imgs")


@pytest.mark.parametrize("field", ["format", "version", "key", "image_size", "n_images", "label_names", "skipped",
                                   "content_sha256"])
def test_cache_meta_with_a_missing_or_mistyped_field_is_rebuilt(tmp_path, field):
    make_pngs(tmp_path / "imgs")
    path = open_quiet(tmp_path / "imgs", tmp_path).cache_path
    for value in ("<deleted>", None, 5, "x", [[1]]):
        meta = json.loads((path / "meta.json").read_text())
        if value == "<deleted>":
            del meta[field]
        else:
            meta[field] = value
        (path / "meta.json").write_text(json.dumps(meta))
        again = open_quiet(tmp_path / "imgs", tmp_path)
        assert again.built, (field, value)
        assert_same_as_loader(again, tmp_path / "imgs")


@pytest.mark.parametrize("world_size", [2, 3])
def test_rank_shards_cover_the_training_set_exactly_once(tmp_path, world_size):
    make_pngs(tmp_path / "imgs")
    ds = open_quiet(tmp_path / "imgs", tmp_path)
    shards = [ds.train_x.shard(r, world_size) for r in range(world_size)]
    rows = np.concatenate([s.rows for s in shards])
    assert len(rows) == len(ds.train_x) and np.array_equal(np.sort(rows), ds.train_x.rows)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    everything = ds.train_x.load()
    for r, s in enumerate(shards):
        assert torch.equal(s.load(), everything[r::world_size])
        assert isinstance(s.images, np.memmap) and s.images is ds.train_x.images  # same map, no copy
    labels_seen = np.concatenate([ds.train_y.numpy()[r::world_size] for r in range(world_size)])
    assert sorted(labels_seen.tolist()) == sorted(ds.train_y.tolist())
    with pytest.raises(ValueError, match="rank 2 is not in"):
        ds.train_x.shard(2, 2)


def test_reader_is_a_memory_map_and_batches_match_the_in_memory_path(tmp_path):
    make_pngs(tmp_path / "imgs", counts=(("a", 150), ("b", 90)))
    ds = open_quiet(tmp_path / "imgs", tmp_path)
    images, labels, meta = read_cache(ds.cache_path)
    assert type(images) is np.memmap and not images.flags.owndata and not images.flags.writeable
    assert isinstance(ds.train_x, MemmapImages) and Path(ds.train_x.images.filename) == ds.cache_path / "images.npy"
    x = model_input(ds.train_x)
    assert isinstance(x, BatchInput) and x.shape == (len(ds.train_x), SIZE[0] * SIZE[1])
    whole = model_input(ds.train_x.load())  # what the trainer does today: the whole set as floats
    assert isinstance(whole, torch.Tensor) and whole.dtype == torch.float32
    mapped = BatchInput(MemmapImages(ds.train_x.images, ds.train_x.rows, reader="map"))
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        idx = torch.randint(0, len(x), (37,), generator=gen)  # unsorted, with repeats and runs
        idx[5:15] = torch.arange(20, 30)
        assert torch.equal(x[idx], whole[idx]) and torch.equal(mapped[idx], whole[idx])
    perm = torch.randperm(len(x), generator=gen)
    assert torch.equal(x[perm[10:20]], whole[perm[10:20]]) and torch.equal(x[3:9], whole[3:9])
    assert torch.equal(x[7], whole[7]) and torch.equal(ds.train_x[5], ds.train_x.load()[5])
    assert x[torch.arange(0)].shape == (0, SIZE[0] * SIZE[1])
    blob = pickle.dumps(ds.train_x)  # file name and rows, never the pixels (what a worker process receives)
    assert len(blob) < ds.train_x.rows.nbytes + 1000
    rebuild, args = ds.train_x.__reduce__()  # what unpickling calls, without unpickling anything
    back = rebuild(*args)
    assert isinstance(back.images, np.memmap) and torch.equal(back.load(), ds.train_x.load())
    with pytest.raises(ValueError, match="reader must be one of"):
        MemmapImages(images, reader="read-everything")


def _open_in_child(folder, cache, queue):
    ds = open_folder_dataset(folder, SIZE, cache_dir=cache, workers=1, progress=False)
    queue.put((ds.built, ds.cache_path.name))


def test_concurrent_opens_build_once(tmp_path):
    make_pngs(tmp_path / "imgs")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_open_in_child, args=(tmp_path / "imgs", tmp_path / "c", queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert sum(built for built, _ in results) == 1 and len({name for _, name in results}) == 1


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("VAE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "vae-latent-explorer"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "vae-latent-explorer"
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "vc"))
    make_pngs(tmp_path / "imgs", counts=(("a", 4),), loose=0)
    ds = open_quiet(tmp_path / "imgs", tmp_path, cache_dir=None)
    assert ds.cache_path.is_relative_to(tmp_path / "vc" / "folders")
