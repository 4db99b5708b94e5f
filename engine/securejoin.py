"""Resolve a path inside a root directory the way the container will see it.

A container's root filesystem is untrusted: `/etc/passwd` may be a symlink to the
host's, an archive member may be `../../etc/cron.d/x`. `resolve_in_root` walks the path
one component at a time, treating every symlink target (absolute or relative) as seen
from `root`, so the result never leaves `root`. Blocking (it calls lstat/readlink).
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

_MAX_LINKS = 255


class ScopeError(ValueError):
    """The path cannot be resolved inside the root (too many links)."""


def clean_relative(unsafe: str) -> str:
    """Lexically clean `unsafe` as if it were absolute inside a root; returns it relative.

    `../../x` → `x`, `/a/./b/../c` → `a/c`, `` and `/` → ``.
    """
    cleaned = posixpath.normpath("/" + unsafe)
    # normpath keeps a leading '//' ; collapse it
    cleaned = cleaned.lstrip("/")
    return "" if cleaned == "." else cleaned


def resolve_in_root(root: Path, unsafe: str, *, follow_final: bool = True) -> Path:
    """The host path that `unsafe` names inside `root`, every symlink resolved in scope.

    Missing components are fine (the result is where they would be created). With
    `follow_final=False` a symlink in the last component is left unresolved, which is
    what extraction of a symlink or hardlink member needs.
    """
    root = Path(os.path.abspath(root))
    pending = [p for p in clean_relative(unsafe).split("/") if p]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        is_last = not pending
        if is_last and not follow_final:
            resolved.append(part)
            break
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise ScopeError(f"too many levels of symbolic links in {unsafe!r}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p] + pending
    return root.joinpath(*resolved)
