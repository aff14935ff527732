"""Crash-safe file writing: data is never half-written (used by ``data``, ``zoo``, ``memo`` and
``text``), and inter-process file locks (``zoo``, ``memo``).

Everything tlutils writes goes to a temporary file in the destination folder and is then
renamed over the target with :func:`os.replace`, which is atomic on POSIX and Windows. A
crash leaves either the old file or the new one, never a truncated mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

try:  # POSIX; elsewhere the caches work without inter-process locks
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success
    (every chapter's caches: the model zoo, chapter 04, and the embedding caches, chapter 05).

    ``suffix`` lets writers that insist on an extension (Keras wants ``.weights.h5``) keep it.
    On any exception (KeyboardInterrupt included), in the caller's block or in the rename, the
    temporary file is removed and ``path`` is untouched.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if not isinstance(suffix, str):
        raise ValueError(f"suffix must be a str, got {type(suffix).__name__}")
    target = Path(path)
    if not target.name:
        raise ValueError(f"path must name a file, got {path!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path (section 4.2: the model
    zoo's files are never half-written)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"data must be bytes, got {type(data).__name__}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path (section 4.2)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (section 4.2: the zoo checks its weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def locked(path: str | os.PathLike, *, exclusive: bool) -> Iterator[None]:
    """Hold an inter-process lock on the file ``path`` (created if missing): ``exclusive`` to
    compute and write a cache entry, shared to read one (the model zoo, chapter 04; cached
    comparisons, chapters 01 and 04). Where the lock file cannot be created (a read-only
    cache), a shared lock goes on without it; an exclusive one raises the ``OSError``.
    Without ``fcntl`` (Windows) nothing is locked."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if not isinstance(exclusive, bool):
        raise ValueError(f"exclusive must be True or False, got {exclusive!r}")
    fd = None
    if fcntl is not None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            if exclusive:
                raise
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_RDONLY)
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock
