"""Removing containers: `rm`, `rm -f`, auto-remove and `container prune`.

The record is marked `removing` (persisted) before anything is undone, so a removal
that moord did not live to finish is finished at the next start-up (`recovery`). Then
the runtime forgets the container, its networks are detached, its root unmounted, its
cgroup and directory removed, the record deleted, its volumes released (anonymous ones
removed with `-v` or auto-remove), and whoever waits on the container is woken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from engine import fsutil
from engine.containers import stopping
from engine.containers.model import Container, Status, StopReason
from engine.containers.sizes import layer_size
from engine.errors import Conflict, NotModified
from engine.logs.gaps import GAPS
from engine.metrics.catalog import METRICS

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager


async def remove(m: ContainerManager, c: Container, *, force: bool = False,
                 volumes: bool = False) -> None:
    live = m.live_of(c)
    async with live.op_lock:
        if not m.recorded(c.id):
            return
        if c.state.is_live or c.state.status is Status.RESTARTING:
            if not force:
                verb = {Status.PAUSED: "paused", Status.RESTARTING: "restarting"}.get(
                    c.state.status, "running")
                raise Conflict(
                    f'cannot remove container "/{c.name}": container is {verb}: stop the '
                    "container before removing or force remove"
                )
            live.cancel_pending_restart()
            live.manual_restart = True  # no auto-remove or restart from the exit path
            if c.state.is_live:
                live.stop_requested = True
                live.stop_reason = StopReason.USER
                await stopping.kill_and_wait(m, c, live.next_exit)
        if c.state.status is Status.REMOVING and not force:
            raise Conflict(f"removal of container {c.name} is already in progress")
        await remove_locked(m, c, volumes=volumes)


async def remove_locked(m: ContainerManager, c: Container, *, volumes: bool = False) -> None:
    """Remove `c`, which has no process; the caller holds its lock (or is recovery)."""
    c.state.status = Status.REMOVING
    await m.table.save(c)
    target = m.target(c)
    await m.runtime.delete(target)
    await m.detach_network(c)
    await m.unmount_rootfs(c)
    await m.runtime.release(target)
    await trio.to_thread.run_sync(fsutil.remove_tree, m.paths(c).root)
    await m.table.forget(c)
    if m.volumes is not None:
        await m.volumes.release(c.id, c.mounts, remove_anonymous=volumes or c.host.auto_remove)
    # an image force-removed while this container used it can go now
    await m.images.gc(lambda image_id: bool(m.image_users(image_id)))
    live = m.live.pop(c.id, None)
    m.attach.start_failed(c.id, "container was removed")
    if live is not None:
        live.cancel_pending_restart()
        live.end_run_tasks()
        code = c.state.exit_code
        for notice in (live.next_exit, live.stopped, live.removed):
            notice.fire(code)
    METRICS.forget_container(c.id)
    GAPS.forget(m.paths(c).log)
    m.publish(c, "destroy")


async def prune(m: ContainerManager, keep: Callable[[Container], bool]
                ) -> tuple[list[str], int]:
    """Remove every stopped container that `keep` doesn't protect; returns their IDs and
    the bytes their writable layers held (dockerd's `SpaceReclaimed`)."""
    removed: list[str] = []
    reclaimed = 0
    for c in m.records():
        if c.state.is_live or c.state.status in (Status.RESTARTING, Status.REMOVING):
            continue
        if keep(c):
            continue
        size = await trio.to_thread.run_sync(layer_size, m.paths(c).upper)
        try:
            await remove(m, c)
        except (Conflict, NotModified):
            continue
        removed.append(c.id)
        reclaimed += size
    return removed, reclaimed
