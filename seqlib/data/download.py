"""Fetching dataset files into a local cache, verified by a pinned digest.

Every loader in :mod:`seqlib.data` that needs a file from the internet calls
:func:`fetch`: it tries each mirror in turn, streams into a temporary file next
to the destination, checks the digest (SHA-256, or MD5 where a source
publishes only that) and only then moves the file into place with an atomic
``os.replace``, so the cache never holds a partial or wrong file. Archives are
unpacked by :func:`unpack` the same way: into a staging directory beside the
target, moved into place only when every file came out whole; a truncated or
damaged archive raises :class:`CorruptFileError` and leaves nothing behind.
When every mirror fails, the error says which file to fetch by hand, from
where, and the exact directory to put it in. Three environment variables steer
it: ``SEQLIB_CACHE`` (the cache root, default ``~/.cache/seqlib``),
``SEQLIB_OFFLINE=1`` (never touch the network; the tests set it) and
``SEQLIB_DRY_RUN=1`` (a dry run, :func:`seqlib.profiles.dry_run`, is offline
too: the loaders then use generated stand-ins, :mod:`seqlib.data.standins`,
for whatever is not on the machine).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

from seqlib import profiles

CACHE_ENV = "SEQLIB_CACHE"
OFFLINE_ENV = "SEQLIB_OFFLINE"
TIMEOUT_S = 30.0
_CHUNK = 1 << 20  # 1 MiB
ALGORITHMS = {"sha256": ("SHA-256", 64), "md5": ("MD5", 32)}
"""Digest algorithms :func:`fetch` verifies with: name -> (label, hex
digits)."""
# What a damaged archive raises while it is read (disk errors, plain OSError,
# are not corruption and propagate).
_ARCHIVE_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
)


class DatasetUnavailableError(RuntimeError):
    """A dataset file could not be found locally nor fetched from any
    mirror."""


class ChecksumMismatchError(DatasetUnavailableError):
    """A mirror delivered a file whose digest differs from the expected
    one."""


class CorruptFileError(DatasetUnavailableError, ValueError):
    """A dataset file is there but cannot be read: a truncated or damaged
    archive, a pickle that does not unpickle, an ``.npz`` without the expected
    arrays.

    The message (see :func:`corrupt_file_error`) names the file, says what was
    wrong and what to do. It is also a ``ValueError``, what the format readers
    raise for a malformed file outside the cache.
    """


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
    ``"0"``, or in a dry run (:func:`seqlib.profiles.dry_run`), which never
    downloads."""
    if os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0"):
        return True
    return profiles.dry_run()


def file_digest(path: Path | str, algorithm: str = "sha256") -> str:
    """Return the hex digest of the file at ``path``, read in 1 MiB chunks.

    Args:
        path: the file.
        algorithm: ``"sha256"`` or ``"md5"`` (see :data:`ALGORITHMS`).

    Raises:
        ValueError: for another algorithm.
    """
    _check_algorithm(algorithm)
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path | str) -> str:
    """Return the hex SHA-256 digest of the file at ``path``, read in 1 MiB
    chunks."""
    return file_digest(path, "sha256")


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


def _check_algorithm(algorithm: str) -> tuple[str, int]:
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}"
        )
    return ALGORITHMS[algorithm]


def _digests(digest: str | Sequence[str], algorithm: str) -> list[str]:
    """The accepted digests, lower-cased and checked to be hex of the right
    length (a typo in a pinned digest fails here, not after a download)."""
    label, width = _check_algorithm(algorithm)
    wanted = [digest] if isinstance(digest, str) else list(digest)
    out = []
    for d in wanted:
        d = str(d).strip().lower()
        if len(d) != width or any(c not in "0123456789abcdef" for c in d):
            raise ValueError(
                f"expected a {label} digest of {width} hex digits, got {d!r}"
            )
        out.append(d)
    if not out:
        raise ValueError(f"expected at least one {label} digest, got none")
    return out


def fetch(
    url_or_urls: str | Sequence[str],
    dest: Path | str,
    digest: str | Sequence[str],
    *,
    what: str,
    algorithm: str = "sha256",
) -> Path:
    """Make sure ``dest`` holds the file with digest ``digest``, downloading
    it if needed.

    If ``dest`` already has an accepted digest it is returned without any
    network access. Otherwise each URL (mirrors, in order) is streamed into a
    temporary file in ``dest``'s directory, verified, and atomically renamed to
    ``dest``. A stale ``dest`` with another digest is removed first.

    Args:
        url_or_urls: one URL or a sequence of mirror URLs for the same file.
        dest: where the file should end up (its directory is created).
        digest: the expected hex digest, or several accepted ones (where
            mirrors publish differently packed copies of the same data).
        what: a human description for messages, e.g.
            ``"Fashion-MNIST train images"``.
        algorithm: ``"sha256"`` (default) or ``"md5"``, for sources that
            publish only an MD5.

    Returns:
        ``dest`` as a ``Path``.

    Raises:
        ValueError: for an unknown algorithm or a digest that is not hex of
            its length.
        ChecksumMismatchError: if some mirror delivered bytes with a wrong
            digest (the message gives expected vs got) and none had a right
            one; nothing is left at ``dest``.
        DatasetUnavailableError: if no mirror could be read, or the machine is
            offline (``SEQLIB_OFFLINE`` or a dry run); the message names the
            file, the URLs and the target directory.
    """
    urls = [url_or_urls] if isinstance(url_or_urls, str) else list(url_or_urls)
    dest = Path(dest).expanduser()
    digests = _digests(digest, algorithm)
    label = ALGORITHMS[algorithm][0]
    dest.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if dest.exists():
        got = file_digest(dest, algorithm)
        if got in digests:
            return dest
        dest.unlink()  # never keep a wrong file in the cache
        notes.append(
            f"removed {dest}: its {label} was {got}, expected "
            f"{' or '.join(digests)}"
        )
    if is_offline():
        if os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0"):
            notes.append(f"{OFFLINE_ENV} is set, so the network was not tried")
        else:
            notes.append(
                f"this is a dry run ({profiles.DRY_RUN_ENV}=1), which never "
                "downloads"
            )
        raise DatasetUnavailableError(
            _manual_message(what, urls, dest, digests, label, notes)
        )
    mismatch = False
    for url in urls:
        try:
            got = _download(url, dest, digests, algorithm)
        except (
            OSError,
            http.client.HTTPException,
        ) as err:  # URLError, timeouts, short reads
            notes.append(f"{url}: {err}")
            continue
        if got in digests:
            return dest
        mismatch = True
        notes.append(
            f"{url}: checksum mismatch: expected {label} "
            f"{' or '.join(digests)}, got {got}"
        )
    error = ChecksumMismatchError if mismatch else DatasetUnavailableError
    raise error(_manual_message(what, urls, dest, digests, label, notes))


def _download(
    url: str, dest: Path, digests: list[str], algorithm: str = "sha256"
) -> str:
    """Stream ``url`` into a temp file beside ``dest``; move it to ``dest`` iff
    its digest is one of ``digests``.

    Returns:
        The digest of what was received. The temp file is always gone on
        return or on any exception.
    """
    fd, tmp_name = tempfile.mkstemp(
        dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"
    )
    tmp = Path(tmp_name)
    try:
        digest = hashlib.new(algorithm)
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp,
        ):
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        got = digest.hexdigest()
        if got in digests:
            os.replace(
                tmp, dest
            )  # atomic on one filesystem: dest is whole or absent
        return got
    finally:
        tmp.unlink(missing_ok=True)


def _manual_message(
    what: str,
    urls: list[str],
    dest: Path,
    digests: list[str],
    label: str,
    notes: list[str],
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
        f"(expected {label} {' or '.join(digests)}; set {CACHE_ENV} to use "
        "another cache directory).",
    ]
    return "\n".join(lines)


def corrupt_file_error(
    path: Path | str,
    problem: str,
    *,
    urls: Sequence[str] = (),
    dest: Path | str | None = None,
    removed: bool = False,
) -> CorruptFileError:
    """Build the :class:`CorruptFileError` for a file that cannot be read.

    Args:
        path: the unreadable file (or directory).
        problem: what was wrong, e.g. ``"truncated gzip stream"``.
        urls: where the file can be fetched by hand.
        dest: where a hand-fetched copy goes (default: ``path``).
        removed: whether ``path`` was already removed.

    Returns:
        The exception, to ``raise``; its message names the file, the problem
        and what to do (delete it, or fetch it by hand from ``urls`` and put
        it at ``dest``).
    """
    path = Path(path)
    dest = Path(dest) if dest is not None else path
    lines = [f"{path} is corrupt: {problem}."]
    if removed:
        lines.append("It was removed, so the next run fetches it afresh.")
    else:
        lines.append(
            f"Delete {path} and run again"
            + (" to fetch it afresh." if urls else ".")
        )
    if urls:
        lines += ["Or fetch it by hand from any of:"]
        lines += [f"  {url}" for url in urls]
        lines += [f"and put it at {dest}"]
    return CorruptFileError("\n".join(lines))


def _relative(name: str | None) -> PurePosixPath | None:
    """``name`` as a safe relative path (no ``..``, not absolute), else
    None."""
    if not name:
        return None
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return path


def unpack(
    archive: Path | str,
    target: Path | str,
    *,
    what: str,
    select: Callable[[str], str | None] | None = None,
    expect: Sequence[str] = (),
    urls: Sequence[str] = (),
) -> list[Path]:
    """Unpack the regular files of a ``.tar``/``.tar.gz`` or ``.zip``
    archive into ``target``, all or nothing.

    The files are written into a fresh staging directory beside ``target``.
    Only when every member was read whole and every name in ``expect`` came
    out is each top-level entry of the staging directory moved into
    ``target`` (``os.replace``; an entry of the same name is replaced,
    directories first, files last), and the staging directory removed. Links,
    devices and names that would leave ``target`` are skipped.

    Args:
        archive: the archive (its format is read from its first bytes).
        target: the directory that receives the files (created if needed).
        what: a human description for messages.
        select: maps a member name to the relative path it gets under
            ``target``, or to None to skip it; default: keep every name.
        expect: relative paths (after ``select``) that must come out.
        urls: where the archive can be fetched by hand (for the message).

    Returns:
        The top-level paths placed in ``target``.

    Raises:
        CorruptFileError: if the archive is truncated or damaged, or lacks an
            expected file. The staging directory and the archive are removed
            (the next run fetches it afresh) and ``target`` is unchanged.
    """
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    select = select or (lambda name: name)
    staging = Path(
        tempfile.mkdtemp(dir=target, prefix=f".{archive.name}.staging-")
    )
    try:
        try:
            written = _unpack_into(archive, staging, select)
        except _ARCHIVE_ERRORS as err:
            problem = f"{type(err).__name__}: {err}"
        else:
            missing = [name for name in expect if name not in written]
            problem = (
                f"it lacks {', '.join(missing)} (holds {len(written)} "
                "selected files)"
                if missing
                else None
            )
        if problem is not None:
            archive.unlink(missing_ok=True)
            raise corrupt_file_error(
                archive,
                f"could not unpack {what} ({problem})",
                urls=urls,
                dest=archive,
                removed=True,
            )
        entries = sorted(
            staging.iterdir(), key=lambda p: (not p.is_dir(), p.name)
        )
        placed = []
        for entry in entries:
            dst = target / entry.name
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            elif dst.exists() or dst.is_symlink():
                dst.unlink()
            os.replace(entry, dst)
            placed.append(dst)
        return placed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack_into(
    archive: Path, staging: Path, select: Callable[[str], str | None]
) -> set[str]:
    """Write the selected regular files of ``archive`` under ``staging``;
    return their relative paths."""
    written: set[str] = set()

    def _write(name: str, stream) -> None:
        rel = _relative(select(name))
        if rel is None:
            return
        out = staging.joinpath(*rel.parts)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "wb") as f:
            shutil.copyfileobj(stream, f, _CHUNK)
        written.add(rel.as_posix())

    with open(archive, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if is_zip:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir() or _relative(info.filename) is None:
                    continue
                with zf.open(info) as stream:
                    _write(info.filename, stream)
        return written
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if not member.isfile() or _relative(member.name) is None:
                continue
            stream = tar.extractfile(member)
            if stream is not None:
                with stream:
                    _write(member.name, stream)
    return written
