"""Atomic file writes, shared by checkpoints (``trainer/checkpoint.py``) and downloads (``trainer/downloads.py``).

Bytes go to a temporary file ``.<name>.<random><suffix>`` in the target's folder, are fsynced,
and only then renamed over the target (``os.replace`` is atomic on POSIX), after which the folder
is fsynced too. So a reader sees the old file or the complete new one, never a half-written one;
a crash leaves at most the temporary file beside it.

The temporary file is created with mode 0666 filtered by the process umask, exactly what a plain
``open(path, "wb")`` would give (``tempfile.mkstemp`` makes 0600, which is why downloads used to
end up private while checkpoints did not). Reading the umask would mean setting it, which races
with other threads; letting the kernel apply it at ``open`` does not.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def _create_temp(path: Path, suffix: str) -> tuple[int, Path]:
    """A new, empty temporary file beside ``path``: (fd open for writing, its path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: could not create a temporary file beside it")


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable; best effort (not possible on every platform)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


@contextmanager
def atomic_writer(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[tuple[BinaryIO, Path]]:
    """``with atomic_writer(dest) as (f, tmp): f.write(...)``: on a normal exit the bytes are
    flushed, fsynced and renamed over ``dest``; on any exception (the body may raise after
    checking ``tmp``) the temporary file is removed and ``dest`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path, suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (never half-written)."""
    with atomic_writer(path) as (f, _):
        f.write(data)
