"""moord's `ContainerRuntime`: conmon as each container's monitor, crun or runc below it.

conmon creates the container (`engine.runtime.conmon`), holds its stdio, writes its log
and its exit record, and outlives moord; everything after the create is the OCI runtime's
command line (`engine.runtime.oci`); exits are learnt from the exit files and a pidfd on
conmon (`engine.runtime.exits`). conmon is moved into `/<cgroup-parent>/conmon` before it
forks, so a service manager stopping moord does not take the monitors along.
"""

from __future__ import annotations

import logging
import os
import signal as signals
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from engine.runtime import cgroups, conmon
from engine.runtime.exits import (
    clear_run_files,
    exit_recorded_at,
    oom_recorded,
    read_exit_file,
    read_pid_file,
    watch_conmon,
)
from engine.runtime.interface import (
    Created,
    ExitStatus,
    ExitWatch,
    LaunchOptions,
    RuntimeState,
    RuntimeTarget,
)
from engine.runtime.oci import OCIRuntime

if TYPE_CHECKING:
    from engine.runtime.host import HostProfile

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class ConmonRuntime:
    host: HostProfile
    exec_root: Path  # the OCI runtimes' roots (never shared with podman's) and attach sockets
    cgroup_parent: str

    def command_line(self, runtime: str) -> OCIRuntime:
        info = self.host.runtimes[runtime]
        return OCIRuntime(info.name, info.path, self.exec_root / info.name)

    # a run -------------------------------------------------------------------------
    async def reset(self, target: RuntimeTarget) -> None:
        # the previous exit record goes before conmon could write a new one
        await trio.to_thread.run_sync(clear_run_files, target.userdata)
        await self.delete(target)

    async def create(self, target: RuntimeTarget, options: LaunchOptions) -> Created:
        oci = self.command_line(target.runtime)
        launch = conmon.ConmonLaunch(target, options, runtime_path=oci.path,
                                     runtime_root=oci.root, conmon_path=self.host.conmon_path,
                                     socket_dir=self.exec_root / "socks")
        launched = await conmon.launch(launch, place=self._place_monitor)
        return Created(pid=launched.container_pid, monitor_pid=launched.conmon_pid,
                       watch=watch_conmon(launched.conmon_pid, target.id))

    async def _place_monitor(self, pid: int) -> None:
        relpath = f"/{self.cgroup_parent.strip('/')}/conmon"
        problems = await trio.to_thread.run_sync(cgroups.place_process, self.host.cgroups, pid,
                                                 relpath)
        if problems:
            log.debug("conmon %d stays partly in moord's cgroups: %s", pid, "; ".join(problems))

    async def start(self, target: RuntimeTarget) -> None:
        await self.command_line(target.runtime).start(target.id)

    # signals, the freezer, limits ----------------------------------------------------
    async def kill(self, target: RuntimeTarget, signal: int) -> None:
        await self.command_line(target.runtime).kill(target.id, signal)

    async def kill_process(self, pid: int) -> None:
        try:
            os.kill(pid, signals.SIGKILL)
        except ProcessLookupError:
            pass

    async def pause(self, target: RuntimeTarget) -> None:
        await self.command_line(target.runtime).pause(target.id)

    async def resume(self, target: RuntimeTarget) -> None:
        await self.command_line(target.runtime).resume(target.id)

    async def update(self, target: RuntimeTarget, resources: Mapping[str, Any], *,
                     unlimited_pids: bool = False) -> None:
        await self.command_line(target.runtime).update(target.id, dict(resources))
        if unlimited_pids:
            # crun 1.8 would write -1, which cgroup v1 refuses: the resources leave pids out
            await trio.to_thread.run_sync(cgroups.lift_pids_limit, self.host.cgroups,
                                          target.cgroup)

    # conmon's control FIFO -------------------------------------------------------------
    async def resize(self, target: RuntimeTarget, height: int, width: int) -> None:
        try:
            await trio.to_thread.run_sync(conmon.write_ctl, target.bundle, conmon.CTL_RESIZE,
                                          height, width)
        except OSError as exc:
            # not worth failing the request for: conmon may be exiting with its container
            log.warning("cannot resize the terminal of %s: %s", target.id[:12],
                        exc.strerror or exc)

    async def reopen_log(self, target: RuntimeTarget) -> bool:
        try:
            await trio.to_thread.run_sync(conmon.write_ctl, target.bundle, conmon.CTL_REOPEN_LOG)
        except OSError:
            return False
        return True

    # the end of a run, and of a container ----------------------------------------------
    async def delete(self, target: RuntimeTarget) -> None:
        await self.command_line(target.runtime).delete(target.id, force=True)

    async def release(self, target: RuntimeTarget) -> None:
        await trio.to_thread.run_sync(cgroups.remove_cgroup, self.host.cgroups, target.cgroup)

    async def forget(self, container_id: str) -> None:
        for info in self.host.runtimes.values():
            if info.usable:
                await self.command_line(info.name).delete(container_id, force=True)

    # what is known of a container --------------------------------------------------------
    async def state(self, target: RuntimeTarget) -> RuntimeState | None:
        oci = self.command_line(target.runtime)
        # no state directory: the runtime doesn't know it, and that costs no process to learn
        if not await trio.to_thread.run_sync((oci.root / target.id).exists):
            return None
        found = await oci.state(target.id)
        if found is None:
            return None
        return RuntimeState(status=str(found.get("status") or ""),
                            pid=int(str(found.get("pid") or 0)))

    async def frozen(self, target: RuntimeTarget) -> bool | None:
        return await trio.to_thread.run_sync(cgroups.is_frozen, self.host.cgroups, target.cgroup)

    async def exit_status(self, target: RuntimeTarget) -> ExitStatus:
        def read() -> ExitStatus:
            return ExitStatus(code=read_exit_file(target.userdata),
                              oom=oom_recorded(target.userdata),
                              recorded_at=exit_recorded_at(target.userdata))

        return await trio.to_thread.run_sync(read)

    async def adopt(self, target: RuntimeTarget, monitor_pid: int) -> ExitWatch | None:
        pid = monitor_pid or await trio.to_thread.run_sync(
            read_pid_file, target.userdata / "conmon.pid")
        return watch_conmon(pid, target.id) if pid else None
