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


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = 60,
    validate: Callable[[Path], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` atomically and verify it; return ``dest``. (About 70 lines: the
    transfer, its four failure kinds and the three checks share one temporary file and one message.)

    Bytes go to a temporary file in ``dest``'s folder (:func:`trainer.fileio.atomic_writer`:
    the same permissions as a plain ``open``), which is checked (length against
    Content-Length, ``md5`` / ``sha256`` if given, then ``validate(tmp_path)`` if given, which
    raises :class:`DataError` on a bad file) and only then fsynced and renamed over ``dest``.
    On any failure (HTTP error, dropped connection, timeout, checksum mismatch, invalid
    content) the temporary file is removed, an existing ``dest`` is left untouched, and
    :class:`DataError` says what happened. Progress goes to stderr (tqdm, only on a terminal).
    """
    from tqdm import tqdm

    dest = Path(dest)
    received = 0
    h_md5 = hashlib.md5(usedforsecurity=False)
    h_sha = hashlib.sha256()
    with atomic_writer(dest, suffix=".part") as (out, tmp):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length", "")
                expected = int(length) if length.strip().isdigit() else None
                with tqdm(
                    total=expected, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=dest.name, file=sys.stderr, disable=None, leave=False,
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
        # http.client returns EOF quietly when the server closes early, so count ourselves.
        if expected is not None and received != expected:
            raise DataError(
                f"download of {url} was cut short: connection closed after {received} of {expected} bytes"
            )
        for algo, want, h in (("md5", md5, h_md5), ("sha256", sha256, h_sha)):
            if want and h.hexdigest() != want.lower():
                raise DataError(
                    f"download of {url} failed its checksum: {algo} {h.hexdigest()}, expected {want.lower()} "
                    f"({received} bytes; not saved)"
                )
        if validate is not None:
            out.flush()  # validate reads the temporary file by name
            try:
                validate(tmp)
            except DataError as e:
                raise DataError(f"download of {url} is not a valid file (not saved): {e}") from None
    return dest
