"""trainer.data downloads against a local HTTP server: verified, atomic, clear errors, nothing left behind."""

from __future__ import annotations

import functools
import hashlib
import threading
import warnings
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from trainer import data as D
from trainer.data import DataError, load_frey, load_mnist
from trainer.downloads import download_file


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class ShortBody(BaseHTTPRequestHandler):
    """Promises 100000 bytes, sends 1000, then closes the connection."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"\x1f\x8b" + b"x" * 998)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def serve(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def mirror(shared_data_dir, monkeypatch):
    """Base URL of a local server over the shared data folder, set as VAE_DATA_MIRROR."""
    server, url = serve(functools.partial(QuietFiles, directory=str(shared_data_dir)))
    monkeypatch.setenv("VAE_DATA_MIRROR", url)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def empty_mirror(tmp_path_factory, monkeypatch):
    """A server with no files: every request is a 404."""
    server, url = serve(functools.partial(QuietFiles, directory=str(tmp_path_factory.mktemp("empty"))))
    monkeypatch.setenv("VAE_DATA_MIRROR", url)
    yield url
    server.shutdown()
    server.server_close()


def sha256_sums(shared_data_dir) -> dict[str, str]:
    lines = (shared_data_dir / "SHA256SUMS").read_text().split("\n")
    return {name: digest for digest, name in (ln.split() for ln in lines if ln.strip())}


@pytest.mark.slow
def test_official_mnist_files_download_and_verify(mirror, shared_data_dir, tmp_path):
    sums = sha256_sums(shared_data_dir)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        dest = download_file(f"{mirror}/mnist/{name}", tmp_path / name, md5=D.MNIST_MD5[name])
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == sums[f"mnist/{name}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    )


@pytest.mark.slow
def test_train_images_fail_the_official_md5_and_leave_nothing(mirror, tmp_path):
    name = "train-images-idx3-ubyte.gz"
    with pytest.raises(DataError, match=r"failed its checksum: md5 .* expected f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        download_file(f"{mirror}/mnist/{name}", tmp_path / name, md5=D.MNIST_MD5[name])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_load_mnist_refuses_a_download_that_fails_its_checksum(mirror, tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz failed its checksum"):
        load_mnist(tmp_path, download=True)
    left = [p.name for p in (tmp_path / "mnist").iterdir()]
    assert "train-images-idx3-ubyte.gz" not in left and not any(n.endswith(".part") for n in left)


@pytest.mark.slow
def test_load_mnist_and_frey_download_end_to_end(mirror, shared_data_dir, tmp_path, monkeypatch):
    # The shared train-images file is a faithful rebuild, not the original; trust its own md5 here.
    rebuilt = shared_data_dir / "mnist" / "train-images-idx3-ubyte.gz"
    table = dict(D.MNIST_MD5, **{rebuilt.name: hashlib.md5(rebuilt.read_bytes()).hexdigest()})
    monkeypatch.setattr(D, "MNIST_MD5", table)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every file verified: no checksum warning
        ds = load_mnist(tmp_path, download=True)
    assert ds.train_x.shape == (60000, 28, 28) and ds.test_x.shape == (10000, 28, 28)
    files = ds.provenance["files"]
    assert files["test_images"]["url"] == f"{mirror}/mnist/t10k-images-idx3-ubyte.gz"
    assert {f["checksum"] for f in files.values()} == {"official"}
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(D.MNIST_FILES.values())
    # Present files are not fetched again, even with the server gone.
    monkeypatch.setenv("VAE_DATA_MIRROR", "http://127.0.0.1:9")
    assert torch.equal(load_mnist(tmp_path, download=True).test_y, ds.test_y)
    monkeypatch.setenv("VAE_DATA_MIRROR", mirror)

    frey = load_frey(tmp_path, download=True)
    assert frey.train_x.shape == (1768, 28, 20)
    assert frey.provenance["files"]["frames"]["url"] == f"{mirror}/frey/frey_rawface.mat"
    assert (tmp_path / "frey" / "frey_rawface.mat").is_file()


def test_frey_download_that_is_not_a_mat_file_is_refused(tmp_path, monkeypatch):
    # Frey has no published checksum, so the structure check is what refuses a bad download.
    (tmp_path / "srv" / "frey").mkdir(parents=True)
    (tmp_path / "srv" / "frey" / "frey_rawface.mat").write_bytes(b"MATLAB 5.0 MAT-file, but not really")
    server, url = serve(functools.partial(QuietFiles, directory=str(tmp_path / "srv")))
    try:
        monkeypatch.setenv("VAE_DATA_MIRROR", url)
        with pytest.raises(DataError, match="not a valid file.*cannot read as a MATLAB"):
            load_frey(tmp_path / "data", download=True)
    finally:
        server.shutdown()
        server.server_close()
    assert list((tmp_path / "data" / "frey").iterdir()) == []


def test_connection_closed_early_is_a_clear_error(tmp_path):
    server, url = serve(ShortBody)
    try:
        with pytest.raises(DataError, match="cut short: connection closed after 1000 of 100000 bytes"):
            download_file(f"{url}/x.gz", tmp_path / "x.gz")
    finally:
        server.shutdown()
        server.server_close()
    assert list(tmp_path.iterdir()) == []


def test_failed_download_leaves_an_existing_file_untouched(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"old")
    server, url = serve(ShortBody)
    try:
        with pytest.raises(DataError):
            download_file(f"{url}/x.gz", tmp_path / "x.gz")
    finally:
        server.shutdown()
        server.server_close()
    assert [p.name for p in tmp_path.iterdir()] == ["x.gz"] and (tmp_path / "x.gz").read_bytes() == b"old"


def test_404_is_a_clear_error(empty_mirror, tmp_path):
    with pytest.raises(DataError, match=r"download of http://127\.0\.0\.1:\d+/mnist/\S+ failed: HTTP 404"):
        load_mnist(tmp_path, download=True)
    with pytest.raises(DataError, match="frey_rawface.mat failed: HTTP 404"):
        load_frey(tmp_path, download=True)
    assert list((tmp_path / "mnist").iterdir()) == [] and list((tmp_path / "frey").iterdir()) == []


def test_unreachable_server_is_a_clear_error(tmp_path):
    # Port 9 (discard) on localhost: nothing listens there on a normal machine.
    with pytest.raises(DataError, match=r"download of http://127\.0\.0\.1:9/f failed: .*refused"):
        download_file("http://127.0.0.1:9/f", tmp_path / "f", timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_sha256_is_checked_too(tmp_path):
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "f.bin").write_bytes(b"hello")
    server, url = serve(functools.partial(QuietFiles, directory=str(tmp_path / "srv")))
    try:
        good = hashlib.sha256(b"hello").hexdigest()
        assert download_file(f"{url}/f.bin", tmp_path / "out" / "f.bin", sha256=good).read_bytes() == b"hello"
        with pytest.raises(DataError, match="failed its checksum: sha256"):
            download_file(f"{url}/f.bin", tmp_path / "out2" / "f.bin", sha256="0" * 64)
    finally:
        server.shutdown()
        server.server_close()
    assert list((tmp_path / "out2").iterdir()) == []
