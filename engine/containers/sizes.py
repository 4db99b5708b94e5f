"""How much disk a container takes: `SizeRw` and `SizeRootFs` (`ps -s`, `inspect -s`,
`system df`) and what `container prune` reclaims.

Counted as dockerd counts its overlay2 layers: every entry of the container's writable
(upper) layer that is not a directory adds its size as `lstat` gives it (a symlink its
target's length; a whiteout nothing), each hard-linked inode once. `SizeRootFs` adds
the sizes of the image's layers below.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager
    from engine.containers.model import Container


@attrs.frozen
class ContainerSize:
    rw: int  # the writable layer
    root_fs: int  # that and the image's layers


def layer_size(path: Path) -> int:
    """The bytes of the non-directory entries below `path`, hard links once (0 if it is
    not there). Blocking."""
    total = 0
    seen: set[int] = set()
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
                    elif st.st_size and st.st_ino not in seen:
                        seen.add(st.st_ino)
                        total += st.st_size
        except (FileNotFoundError, NotADirectoryError):
            continue
    return total


async def container_sizes(m: ContainerManager, containers: Sequence[Container]
                          ) -> list[ContainerSize]:
    """The sizes of `containers`, their writable layers walked in one worker-thread hop."""
    uppers = [m.paths(c).upper for c in containers]
    rw = await trio.to_thread.run_sync(lambda: [layer_size(p) for p in uppers])
    out = []
    for c, size in zip(containers, rw, strict=True):
        image = m.images.get(c.image_id)
        below = m.images.layers_size(image) if image is not None else 0
        out.append(ContainerSize(rw=size, root_fs=size + below))
    return out


__all__ = ["ContainerSize", "container_sizes", "layer_size"]
