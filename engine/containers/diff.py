"""`docker diff`: what a container changed, from its overlayfs upper directory.

A whiteout is a deletion (`D`); anything else in the upper directory is a change (`C`)
if one of the image's layers has that path, an addition (`A`) if none does. Parent
directories of a change show as changed, as they do in Docker (overlayfs copies them
up). The runtime's empty mount-point stubs are not changes. Blocking.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from engine.images.upperdir import is_stub, walk

MODIFIED, ADDED, DELETED = 0, 1, 2


def container_changes(upper: Path, lower_dirs: Sequence[Path]) -> list[tuple[str, int]]:
    """(path, kind) for every change, in path order; kinds as Docker numbers them."""
    out: list[tuple[str, int]] = []
    for rel, full, st in walk(str(upper)):
        if is_stub(rel, st, full):
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            out.append(("/" + rel, DELETED))
            continue
        existed = any(os.path.lexists(layer / rel) for layer in lower_dirs)
        out.append(("/" + rel, MODIFIED if existed else ADDED))
    return out


__all__ = ["ADDED", "DELETED", "MODIFIED", "container_changes"]
