"""trainer.data loaders: synthetic bad files give clear DataErrors; real files give the known shapes."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
import warnings

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from trainer import data as D
from trainer.data import DataError, DataWarning, load_dataset, load_frey, load_mnist
from trainer.image_folder import load_image_folder

# --------------------------------------------------------------------------- synthetic MNIST


def idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes | None = None) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    if payload is None:
        payload = (np.arange(int(np.prod(dims))) % 10).astype(np.uint8).tobytes()
    return header + payload


def write_mnist(folder, n_train=6, n_test=4, **overrides) -> dict:
    """Write four tiny gzipped IDX files; ``overrides`` maps a file name to its raw (already gzipped) bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "train-images-idx3-ubyte.gz": gzip.compress(idx_bytes(2051, (n_train, 28, 28))),
        "train-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(2049, (n_train,))),
        "t10k-images-idx3-ubyte.gz": gzip.compress(idx_bytes(2051, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(2049, (n_test,))),
    }
    files.update(overrides)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    return files


def test_tiny_mnist_loads_and_warns_about_unofficial_checksum(tmp_path):
    write_mnist(tmp_path / "mnist")
    with pytest.warns(DataWarning, match="not the official"):
        ds = load_mnist(tmp_path)
    assert ds.name == "mnist" and ds.image_shape == (28, 28)
    assert ds.train_x.shape == (6, 28, 28) and ds.train_x.dtype == torch.uint8
    assert ds.test_x.shape == (4, 28, 28) and ds.test_y.dtype == torch.int64
    assert ds.train_y.tolist() == [0, 1, 2, 3, 4, 5]
    assert ds.label_names == [str(i) for i in range(10)]
    assert ds.train_x[0, 0, :3].tolist() == [0, 1, 2]  # row-major pixel order
    files = ds.provenance["files"]
    assert {f["checksum"] for f in files.values()} == {"unknown-but-valid-header"}
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in files.values())
    json.dumps(ds.provenance)


def test_mnist_files_found_directly_in_data_dir(tmp_path):
    write_mnist(tmp_path)
    with pytest.warns(DataWarning):
        assert load_dataset("mnist", tmp_path).train_x.shape == (6, 28, 28)


def test_uncompressed_idx_files_are_accepted(tmp_path):
    files = write_mnist(tmp_path / "gz")
    (tmp_path / "mnist").mkdir()
    for name, raw in files.items():
        (tmp_path / "mnist" / name.removesuffix(".gz")).write_bytes(gzip.decompress(raw))
    with pytest.warns(DataWarning):
        ds = load_mnist(tmp_path)
    assert ds.test_x.shape == (4, 28, 28)
    assert ds.provenance["files"]["test_images"]["path"].endswith("t10k-images-idx3-ubyte")


def test_official_md5_marks_file_official(tmp_path, monkeypatch):
    files = write_mnist(tmp_path / "mnist")
    table = {n: hashlib.md5(raw).hexdigest() for n, raw in files.items()}
    monkeypatch.setattr(D, "MNIST_MD5", table)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_mnist(tmp_path)
    assert {f["checksum"] for f in ds.provenance["files"].values()} == {"official"}


@pytest.mark.parametrize(
    "name, raw, message",
    [
        ("train-images-idx3-ubyte.gz", gzip.compress(idx_bytes(2049, (6, 28, 28))), "magic number 2049, expected 2051"),
        ("train-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(2051, (6,))), "magic number 2051, expected 2049"),
        ("t10k-images-idx3-ubyte.gz", gzip.compress(idx_bytes(2051, (4, 28, 28)))[:-30], "not a complete gzip file"),
        ("t10k-images-idx3-ubyte.gz", b"not gzip at all", "not a complete gzip file"),
        ("t10k-images-idx3-ubyte.gz", gzip.compress(idx_bytes(2051, (4, 32, 32))), r"dimensions \(4, 32, 32\)"),
        (
            "t10k-images-idx3-ubyte.gz",
            gzip.compress(idx_bytes(2051, (4, 28, 28), payload=bytes(4 * 784 - 5))),
            "payload is 3131 bytes",
        ),
        ("t10k-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(2049, (5,))), "5 labels for 4 images"),
        ("t10k-labels-idx1-ubyte.gz", gzip.compress(b"\x00\x00"), "too short"),
        (
            "t10k-labels-idx1-ubyte.gz",
            gzip.compress(idx_bytes(2049, (4,), payload=bytes([1, 2, 3, 12]))),
            "label 12, expected digits",
        ),
    ],
)
def test_bad_idx_file_raises_naming_the_file(tmp_path, name, raw, message):
    write_mnist(tmp_path / "mnist", **{name: raw})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(DataError, match=message) as info:
            load_mnist(tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    # the count mismatch names the labels file, every other error the broken file itself
    assert name in msg


def test_missing_mnist_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz not found.*download=True"):
        load_mnist(tmp_path)


# --------------------------------------------------------------------------- synthetic Frey


def test_tiny_frey_split_and_labels(tmp_path):
    ff = (np.arange(560 * 25) % 256).astype(np.uint8).reshape(25, 560).T  # (560, 25)
    (tmp_path / "frey").mkdir()
    scipy.io.savemat(tmp_path / "frey" / "frey_rawface.mat", {"ff": ff})
    ds = load_frey(tmp_path)
    assert ds.train_x.shape == (22, 28, 20) and ds.test_x.shape == (3, 28, 20)
    assert ds.test_y.tolist() == [0, 10, 20]
    assert ds.train_y[:3].tolist() == [1, 2, 3]
    # frame i is column i of ff in row-major 28 x 20 order
    np.testing.assert_array_equal(ds.test_x[1].numpy(), ff[:, 10].reshape(28, 20))
    assert ds.label_names is None and ds.image_shape == (28, 20)
    json.dumps(ds.provenance)


def test_frey_video_is_every_frame_in_order_and_matches_the_split(tmp_path):
    ff = (np.arange(560 * 25) * 7 % 256).astype(np.uint8).reshape(25, 560).T  # (560, 25)
    (tmp_path / "frey").mkdir()
    scipy.io.savemat(tmp_path / "frey" / "frey_rawface.mat", {"ff": ff})
    video = D.load_frey_video(tmp_path)
    assert video.shape == (25, *D.FREY_SHAPE) and video.dtype == np.uint8
    np.testing.assert_array_equal(video, ff.T.reshape(25, 28, 20))  # frame i is column i of ff
    ds = load_frey(tmp_path)  # its labels are indices into the video
    np.testing.assert_array_equal(video[ds.train_y.numpy()], ds.train_x.numpy())
    np.testing.assert_array_equal(video[ds.test_y.numpy()], ds.test_x.numpy())
    with pytest.raises(DataError, match="not found"):
        D.load_frey_video(tmp_path / "empty")


def test_frey_float_ff_is_accepted_when_integral(tmp_path):
    scipy.io.savemat(tmp_path / "frey_rawface.mat", {"ff": np.full((560, 3), 200.0)})
    ds = load_frey(tmp_path)
    assert ds.train_x.dtype == torch.uint8 and int(ds.train_x.max()) == 200


@pytest.mark.parametrize(
    "content, message",
    [
        ({"faces": np.zeros((560, 3), np.uint8)}, "has no variable 'ff'"),
        ({"ff": np.zeros((3, 560), np.uint8)}, r"shape \(3, 560\), expected \(560, N\)"),
        ({"ff": np.zeros((560, 3)) + 0.5}, "not integers 0-255"),
        ({"ff": np.full((560, 3), 300.0)}, "not integers 0-255"),
    ],
)
def test_bad_frey_mat_raises(tmp_path, content, message):
    scipy.io.savemat(tmp_path / "frey_rawface.mat", content)
    with pytest.raises(DataError, match=message) as info:
        load_frey(tmp_path)
    assert "frey_rawface.mat" in str(info.value)


def test_frey_not_a_mat_file(tmp_path):
    (tmp_path / "frey_rawface.mat").write_bytes(b"<html>404</html>")
    with pytest.raises(DataError, match="cannot read as a MATLAB .mat file"):
        load_frey(tmp_path)


# --------------------------------------------------------------------------- image folder


def make_folder(root):
    """Two classes of assorted formats/modes/sizes plus one corrupt file; returns the expected count."""
    a_dir, b_dir = root / "a_class", root / "b_class"  # labels 0 and 1 (sorted names)
    a_dir.mkdir(parents=True)
    (b_dir / "nested").mkdir(parents=True)
    rgb = np.zeros((40, 30, 3), np.uint8)
    rgb[:, :, 0] = 255  # pure red -> luma 76
    Image.fromarray(rgb).save(a_dir / "red.png")
    Image.fromarray(rgb).save(a_dir / "red.JPG", quality=95)
    Image.fromarray(np.full((10, 12), 65535, np.uint16)).save(a_dir / "white16.png")
    Image.fromarray(np.full((10, 12), 32896, np.uint16)).save(a_dir / "mid16.tif")
    rgba = np.zeros((16, 16, 4), np.uint8)  # fully transparent black -> white paper
    Image.fromarray(rgba).save(b_dir / "transparent.png")
    Image.new("CMYK", (20, 20), (0, 0, 0, 255)).save(b_dir / "cmyk.jpg")  # full black ink
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    pal.save(b_dir / "nested" / "pal.gif", transparency=0)  # transparent palette entry -> white
    Image.fromarray(np.full((50, 70), 100, np.uint8)).save(b_dir / "gray.bmp")
    Image.fromarray(np.full((9, 9, 3), 100, np.uint8)).save(b_dir / "gray.webp", lossless=True)
    (b_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (b_dir / "notes.txt").write_text("ignored: not an image extension")
    (root / ".hidden").mkdir()
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / ".hidden" / "x.png")
    return 9


def test_image_folder_formats_labels_and_conversion(tmp_path):
    n = make_folder(tmp_path)
    with pytest.warns(DataWarning, match=r"skipped 1 unreadable.*broken\.png"):
        ds = load_image_folder(tmp_path, image_size=(28, 24), test_fraction=0.0)
    assert ds.name == "folder" and ds.image_shape == (28, 24)
    assert ds.label_names == ["a_class", "b_class"]
    assert ds.train_x.shape == (n, 28, 24) and ds.train_x.dtype == torch.uint8
    assert ds.train_y.dtype == torch.int64 and ds.test_x.shape == (0, 28, 24)
    # files are sorted by path, so the order within each class is known
    names_a = ["mid16.tif", "red.JPG", "red.png", "white16.png"]
    names_b = ["cmyk.jpg", "gray.bmp", "gray.webp", "nested/pal.gif", "transparent.png"]
    assert ds.train_y.tolist() == [0] * len(names_a) + [1] * len(names_b)
    means = {name: float(x.float().mean()) for name, x in zip(names_a + names_b, ds.train_x)}
    assert means["transparent.png"] == 255 and means["nested/pal.gif"] == 255
    assert means["cmyk.jpg"] < 5
    assert means["gray.bmp"] == 100 and means["gray.webp"] == 100
    assert means["white16.png"] == 255 and abs(means["mid16.tif"] - 128) <= 1
    assert abs(means["red.png"] - 76) <= 1 and abs(means["red.JPG"] - 76) <= 3
    prov = ds.provenance
    assert prov["n_images"] == n and len(prov["skipped"]) == 1
    json.dumps(prov)


def test_image_folder_without_subfolders_is_unlabelled_and_split_is_deterministic(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(tmp_path / f"{i:02d}.png")
    ds = load_dataset("folder", tmp_path, test_fraction=0.25, seed=3)
    assert ds.label_names is None and set(ds.train_y.tolist()) == {-1}
    assert len(ds.train_x) == 30 and len(ds.test_x) == 10
    again = load_image_folder(tmp_path, test_fraction=0.25, seed=3)
    assert torch.equal(ds.test_x, again.test_x)
    other = load_image_folder(tmp_path, test_fraction=0.25, seed=4)
    assert not torch.equal(ds.test_x, other.test_x)


def test_image_folder_split_is_stratified(tmp_path):
    for cls, count in (("x", 20), ("y", 10), ("z", 1)):
        (tmp_path / cls).mkdir()
        for i in range(count):
            Image.fromarray(np.full((4, 4), i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    ds = load_image_folder(tmp_path, test_fraction=0.2)
    assert torch.bincount(ds.test_y).tolist() == [4, 2]  # the single 'z' image stays in train
    assert torch.bincount(ds.train_y).tolist() == [16, 8, 1]


def test_empty_or_missing_folder_raises(tmp_path):
    (tmp_path / "only_text").mkdir()
    (tmp_path / "only_text" / "a.txt").write_text("x")
    with pytest.raises(DataError, match="no readable images"):
        load_image_folder(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        load_image_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="test_fraction"):
        load_image_folder(tmp_path, test_fraction=1.0)


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        load_dataset("cifar", tmp_path)


def test_load_dataset_decides_named_dataset_or_folder(tmp_path):
    """A folder run reads image_folder (data_dir is the datasets folder and is ignored); a named
    dataset reads data_dir (image_folder is ignored); the shape is known before loading."""
    write_mnist(tmp_path / "datasets" / "mnist")
    make_folder(tmp_path / "images")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        folder = load_dataset("folder", tmp_path / "datasets", image_folder=tmp_path / "images", image_size=(12, 9))
        named = load_dataset("mnist", tmp_path / "datasets", image_folder=tmp_path / "images", image_size=(12, 9))
    assert folder.name == "folder" and folder.image_shape == (12, 9) == D.image_shape_of("folder", (12, 9))
    assert named.name == "mnist" and named.train_x.shape == (6, 28, 28)
    assert named.image_shape == D.image_shape_of("mnist", (12, 9)) and D.image_shape_of("frey") == (28, 20)
    with pytest.raises(DataError, match="needs the image folder"):
        load_dataset("folder", None)


def test_default_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path))
    assert D.default_data_dir() == tmp_path
    monkeypatch.delenv("VAE_DATA_DIR")
    shared = D.PROJECT_ROOT.parent / "shared" / "data"
    assert D.default_data_dir() == (shared if shared.is_dir() else D.PROJECT_ROOT / "data")


# --------------------------------------------------------------------------- real data


OFFICIAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.slow
def test_real_mnist(shared_data_dir):
    t0 = time.perf_counter()
    with pytest.warns(DataWarning, match="train-images-idx3-ubyte.gz"):  # rebuilt file, see data README
        ds = load_mnist(shared_data_dir)
    seconds = time.perf_counter() - t0
    assert seconds < 10, f"loading MNIST took {seconds:.1f}s; expected about a second"
    assert ds.train_x.shape == (60000, 28, 28) and ds.train_x.dtype == torch.uint8
    assert ds.test_x.shape == (10000, 28, 28) and ds.test_x.dtype == torch.uint8
    assert ds.train_y.shape == (60000,) and ds.test_y.dtype == torch.int64
    assert torch.bincount(ds.test_y, minlength=10).tolist() == OFFICIAL_TEST_COUNTS
    assert int(ds.train_x.max()) == 255 and int(ds.train_x.min()) == 0
    files = ds.provenance["files"]
    assert files["train_images"]["checksum"] == "unknown-but-valid-header"
    assert [files[r]["checksum"] for r in ("train_labels", "test_images", "test_labels")] == ["official"] * 3
    # mean pixel of the official test set is 33.79 (README: rebuilt train set 33.331)
    assert abs(float(ds.test_x.float().mean()) - 33.79) < 0.05
    assert abs(float(ds.train_x.float().mean()) - 33.331) < 0.01
    json.dumps(ds.provenance)


@pytest.mark.slow
def test_real_frey(shared_data_dir):
    ds = load_frey(shared_data_dir)
    assert ds.train_x.shape == (1768, 28, 20) and ds.test_x.shape == (197, 28, 20)
    assert ds.train_x.dtype == torch.uint8
    assert ds.test_y.tolist() == list(range(0, 1965, 10))
    assert sorted(ds.train_y.tolist() + ds.test_y.tolist()) == list(range(1965))
    video = D.load_frey_video(shared_data_dir)
    assert video.shape == (D.FREY_N_FRAMES, *D.FREY_SHAPE)
    np.testing.assert_array_equal(video[ds.test_y.numpy()], ds.test_x.numpy())
