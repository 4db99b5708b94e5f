"""Durable file operations: the building blocks of a store that survives `kill -9`.

All functions here block; call them through `trio.to_thread.run_sync`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600, durable: bool = True) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file.

    Write to a temporary file in the same directory, fsync it, rename it over the
    target, then fsync the directory so the rename itself survives power loss.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def durable_unlink(path: Path) -> None:
    """Remove `path` (missing is fine) and make the removal durable."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(path.parent)


def remove_tree(path: Path) -> None:
    """Remove a directory tree; missing is fine. Mount points below must be unmounted first."""
    shutil.rmtree(path, ignore_errors=False, onerror=_ignore_missing)


def _ignore_missing(func: object, path: str,
                    exc_info: tuple[type[BaseException], BaseException, object]) -> None:
    if isinstance(exc_info[1], FileNotFoundError):
        return
    raise exc_info[1]


def clean_stale_temporaries(directory: Path) -> None:
    """Delete `.name.*.tmp` files that a crash left behind in `directory`."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
