"""Downloads of the original dataset files: atomic, checked, one-line errors.

:func:`download_file` is what ``trainer.data``'s loaders call when ``download=True``; the
environment variable ``VAE_DATA_MIRROR`` replaces the source base URL (:func:`mirror_url`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from trainer.data import DataError, one_line
from trainer.fileio import atomic_writer

USER_AGENT = "vae-latent-explorer/1 (python urllib)"
_CHUNK = 1 << 16


def mirror_url(subdir: str, filename: str) -> str | None:
    mirror = os.environ.get("VAE_DATA_MIRROR", "").strip()
    if not mirror:
        return None
    return f"{mirror.rstrip('/')}/{subdir}/{filename}"


def _transfer(url: str, out, timeout: float, name: str) -> tuple[int, int | None, str, str]:
    """Copy ``url``'s body into the open binary file ``out``: ``(bytes received, Content-Length
    or None, md5 hex, sha256 hex)``. Every transfer failure becomes one :class:`DataError`."""
    from tqdm import tqdm

    received = 0
    h_md5 = hashlib.md5(usedforsecurity=False)
    h_sha = hashlib.sha256()
    try:
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length", "")
            expected = int(length) if length.strip().isdigit() else None
            with tqdm(
                total=expected, unit="B", unit_scale=True, unit_divisor=1024,
                desc=name, file=sys.stderr, disable=None, leave=False,
            ) as bar:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    h_md5.update(chunk)
                    h_sha.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        e.close()
        raise DataError(f"download of {url} failed: HTTP {e.code} {one_line(e.reason)}") from None
    except urllib.error.URLError as e:
        raise DataError(f"download of {url} failed: {one_line(e.reason)}") from None
    except (http.client.HTTPException, OSError) as e:
        # IncompleteRead, connection reset, socket timeout mid-transfer, ...
        raise DataError(
            f"download of {url} failed after {received} bytes: {type(e).__name__}: {one_line(e)}"
        ) from None
    return received, expected, h_md5.hexdigest(), h_sha.hexdigest()


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = 60,
    validate: Callable[[Path], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` atomically and verify it; return ``dest``.

    Bytes go to a temporary file in ``dest``'s folder (:func:`trainer.fileio.atomic_writer`:
    the same permissions as a plain ``open``), which is checked (length against
    Content-Length, ``md5`` / ``sha256`` if given, then ``validate(tmp_path)`` if given, which
    raises :class:`DataError` on a bad file) and only then fsynced and renamed over ``dest``.
    On any failure (HTTP error, dropped connection, timeout, checksum mismatch, invalid
    content) the temporary file is removed, an existing ``dest`` is left untouched, and
    :class:`DataError` says what happened. Progress goes to stderr (tqdm, only on a terminal).
    """
    dest = Path(dest)
    with atomic_writer(dest, suffix=".part") as (out, tmp):
        received, expected, got_md5, got_sha = _transfer(url, out, timeout, dest.name)
        # http.client returns EOF quietly when the server closes early, so count ourselves.
        if expected is not None and received != expected:
            raise DataError(
                f"download of {url} was cut short: connection closed after {received} of {expected} bytes"
            )
        for algo, want, got in (("md5", md5, got_md5), ("sha256", sha256, got_sha)):
            if want and got != want.lower():
                raise DataError(
                    f"download of {url} failed its checksum: {algo} {got}, expected {want.lower()} "
                    f"({received} bytes; not saved)"
                )
        if validate is not None:
            out.flush()  # validate reads the temporary file by name
            try:
                validate(tmp)
            except DataError as e:
                raise DataError(f"download of {url} is not a valid file (not saved): {e}") from None
    return dest
