"""The shared atomic writer: all or nothing, and the permissions a plain open() gives, for
checkpoints and downloads alike (downloads used to end up 0600, checkpoints 0644)."""

from __future__ import annotations

import functools
import os
import stat

import pytest

from tests.test_download import QuietFiles, serve
from trainer.downloads import download_file
from trainer.fileio import atomic_write_bytes, atomic_writer


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_modes_follow_the_umask_like_a_plain_open(tmp_path, umask):
    plain = tmp_path / "plain"
    with open(plain, "wb"):
        pass
    atomic_write_bytes(tmp_path / "a" / "ckpt.safetensors", b"x")
    assert _mode(tmp_path / "a" / "ckpt.safetensors") == _mode(plain) == 0o666 & ~umask

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "f.bin").write_bytes(b"hello")
    server, url = serve(functools.partial(QuietFiles, directory=str(tmp_path / "site")))
    try:
        got = download_file(f"{url}/f.bin", tmp_path / "dl" / "f.bin")
    finally:
        server.shutdown()
        server.server_close()
    assert got.read_bytes() == b"hello" and _mode(got) == _mode(plain)


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    dest = tmp_path / "f"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_writer(dest) as (f, tmp):
            f.write(b"new, half written")
            assert tmp.parent == tmp_path and tmp.name.startswith(".f.")
            raise RuntimeError("boom")
    assert dest.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]
    atomic_write_bytes(dest, b"new")
    assert dest.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]
