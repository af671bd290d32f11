"""Fetching dataset files into a local cache, verified by SHA-256.

Every loader in :mod:`seqlib.data` that needs a file from the internet calls
:func:`fetch`: it tries each mirror in turn, streams into a temporary file next
to the destination, checks the SHA-256 and only then moves the file into place
with an atomic ``os.replace``, so the cache never holds a partial or wrong
file. When every mirror fails, the error says which file to fetch by hand, from
where, and the exact directory to put it in. Two environment variables steer
it: ``SEQLIB_CACHE`` (the cache root, default ``~/.cache/seqlib``) and
``SEQLIB_OFFLINE=1`` (never touch the network; the tests set it).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Sequence

CACHE_ENV = "SEQLIB_CACHE"
OFFLINE_ENV = "SEQLIB_OFFLINE"
TIMEOUT_S = 30.0
_CHUNK = 1 << 20  # 1 MiB


class DatasetUnavailableError(RuntimeError):
    """A dataset file could not be found locally nor fetched from any
    mirror."""


class ChecksumMismatchError(DatasetUnavailableError):
    """A mirror delivered a file whose SHA-256 differs from the expected
    one."""


def cache_dir() -> Path:
    """Return the cache root, creating it if needed.

    Returns:
        ``$SEQLIB_CACHE`` if that variable is set and non-empty, else
        ``~/.cache/seqlib``; the directory exists when this returns.
    """
    root = os.environ.get(CACHE_ENV, "").strip()
    path = (
        Path(root).expanduser() if root else Path.home() / ".cache" / "seqlib"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_offline() -> bool:
    """Return True when ``SEQLIB_OFFLINE`` is set to anything but ``""`` or
    ``"0"``."""
    return os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0")


def sha256_file(path: Path | str) -> str:
    """Return the hex SHA-256 digest of the file at ``path``, read in 1 MiB
    chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_n(n: int | None, available: int, *, what: str) -> int:
    """Validate the ``n`` argument of a loader ("take the first ``n`` items").

    Args:
        n: requested count, or ``None`` for all.
        available: how many items the source holds.
        what: how the error message names the source.

    Returns:
        The count to take: ``available`` when ``n`` is ``None``, else ``n``.

    Raises:
        ValueError: if ``n`` is not an int in ``[0, available]``; nothing is
            silently truncated.
    """
    if n is None:
        return available
    if (
        isinstance(n, bool)
        or not isinstance(n, int)
        or not 0 <= n <= available
    ):
        raise ValueError(
            f"{what}: n must be an int in [0, {available}] or None, got {n!r}"
        )
    return n


def fetch(
    url_or_urls: str | Sequence[str],
    dest: Path | str,
    sha256: str,
    *,
    what: str,
) -> Path:
    """Make sure ``dest`` holds the file with SHA-256 ``sha256``, downloading
    it if needed.

    If ``dest`` already has the right digest it is returned without any network
    access. Otherwise each URL (mirrors, in order) is streamed into a temporary
    file in ``dest``'s directory, verified, and atomically renamed to ``dest``.
    A stale ``dest`` with the wrong digest is removed first.

    Args:
        url_or_urls: one URL or a sequence of mirror URLs for the same file.
        dest: where the file should end up (its directory is created).
        sha256: expected hex SHA-256 of the file.
        what: a human description for messages, e.g.
            ``"Fashion-MNIST train images"``.

    Returns:
        ``dest`` as a ``Path``.

    Raises:
        ChecksumMismatchError: if some mirror delivered bytes with the wrong
            digest (the message gives expected vs got) and none had the right
            one.
        DatasetUnavailableError: if no mirror could be read, or
            ``SEQLIB_OFFLINE`` is set; the message names the file, the URLs and
            the target directory.
    """
    urls = [url_or_urls] if isinstance(url_or_urls, str) else list(url_or_urls)
    dest = Path(dest).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    sha256 = sha256.lower()
    notes: list[str] = []
    if dest.exists():
        got = sha256_file(dest)
        if got == sha256:
            return dest
        dest.unlink()  # never keep a wrong file in the cache
        notes.append(
            f"removed {dest}: its SHA-256 was {got}, expected {sha256}"
        )
    if is_offline():
        notes.append(f"{OFFLINE_ENV} is set, so the network was not tried")
        raise DatasetUnavailableError(
            _manual_message(what, urls, dest, sha256, notes)
        )
    mismatch = False
    for url in urls:
        try:
            got = _download(url, dest, sha256)
        except (
            OSError,
            http.client.HTTPException,
        ) as err:  # URLError, timeouts, short reads
            notes.append(f"{url}: {err}")
            continue
        if got == sha256:
            return dest
        mismatch = True
        notes.append(
            f"{url}: checksum mismatch: expected SHA-256 {sha256}, got {got}"
        )
    error = ChecksumMismatchError if mismatch else DatasetUnavailableError
    raise error(_manual_message(what, urls, dest, sha256, notes))


def _download(url: str, dest: Path, sha256: str) -> str:
    """Stream ``url`` into a temp file beside ``dest``; move it to ``dest`` iff
    the digest matches.

    Returns:
        The SHA-256 of what was received. The temp file is always gone on
        return or on any exception.
    """
    fd, tmp_name = tempfile.mkstemp(
        dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"
    )
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp,
        ):
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        got = digest.hexdigest()
        if got == sha256:
            os.replace(
                tmp, dest
            )  # atomic on one filesystem: dest is whole or absent
        return got
    finally:
        tmp.unlink(missing_ok=True)


def _manual_message(
    what: str, urls: list[str], dest: Path, sha256: str, notes: list[str]
) -> str:
    """Build the 'fetch it by hand' message of
    :class:`DatasetUnavailableError`."""
    lines = [f"Could not obtain {what} ({dest.name})."]
    lines += ["What happened:"] + [f"  - {note}" for note in notes]
    lines += [f"Fetch {dest.name} by hand from any of:"] + [
        f"  {url}" for url in urls
    ]
    lines += [
        f"and put it in the directory {dest.parent}",
        f"(expected SHA-256 {sha256}; set {CACHE_ENV} to use another cache "
        "directory).",
    ]
    return "\n".join(lines)
