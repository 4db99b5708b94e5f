"""Bind sources on the host: are they there, and making the missing ones.

`parse` is pure; these look at (and change) the host's filesystem, so they block and
run in worker threads (`trio.to_thread.run_sync`). Docker's rules: a `--mount` bind
source must exist, a `-v` one is made (a directory, mode 0755, root's) at create and
again at each start if it went missing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from engine.errors import InvalidParameter, SystemFailure


def missing_paths(paths: Sequence[str]) -> list[str]:
    """The paths that do not exist (a dangling symlink exists)."""
    return [p for p in paths if not os.path.lexists(p)]


def make_bind_source(source: str) -> None:
    """Make a `-v` bind source directory unless something is there already."""
    if os.path.lexists(source):
        return
    try:
        os.makedirs(source, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise SystemFailure(
            f"error while creating mount source path '{source}': {exc.strerror or exc}") from None


def check_bind_source(source: str, create: bool) -> None:
    """At start: make the source again (`create`, a `-v` bind) or refuse a missing one."""
    if create:
        make_bind_source(source)
    elif not os.path.lexists(source):
        raise InvalidParameter(
            f'invalid mount config for type "bind": bind source path does not exist: {source}')


__all__ = ["check_bind_source", "make_bind_source", "missing_paths"]
