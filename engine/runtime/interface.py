"""The seam between the container manager and what runs containers: `ContainerRuntime`.

A thin interface: each method is one thing the runtime does to one container (create,
start, signal, freeze, change limits, talk to its monitor, read how it ended). It keeps
no state of its own and judges nothing: whether a stop makes sense, what an exit means
and which record to write are the manager's business. moord's implementation is
`engine.runtime.conmon_runtime.ConmonRuntime`; unit tests drive the manager with a fake.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from engine.errors import SystemFailure

if TYPE_CHECKING:
    from engine.runtime.oci import OCIRuntime


class ContainerGone(SystemFailure):
    """The runtime has no live process for this container (it already exited)."""


class RuntimeCreateFailed(SystemFailure):
    """The OCI runtime refused to create the container; the message is its own words."""


@attrs.frozen
class RuntimeTarget:
    """One container as the runtime sees it: its ID, its OCI runtime and its directories."""

    id: str
    runtime: str  # the OCI runtime's name: crun | runc
    bundle: Path  # config.json and rootfs; the monitor's attach socket and control FIFO
    userdata: Path  # the monitor's own files: the exit record, the OOM flag, pid files
    cgroup: str  # the container's cgroup, relative to the hierarchies' roots


@attrs.frozen
class LaunchOptions:
    """How the container's stdio is set up by its monitor."""

    name: str
    log_path: Path
    stdin: bool = False
    tty: bool = False
    leave_stdin_open: bool = True  # False: the first attach client's end closes stdin
    keep_log: bool = True  # False: the output is discarded (log driver `none`)


class ExitWatch(Protocol):
    """A handle on a container's monitor; `wait` returns once it has exited, which it does
    right after recording the container's exit. `close` releases the handle."""

    @property
    def monitor_pid(self) -> int: ...

    async def wait(self) -> None: ...

    def close(self) -> None: ...


@attrs.frozen
class Created:
    """A container created and not started yet."""

    pid: int  # the container's init, on the host
    monitor_pid: int
    watch: ExitWatch | None  # None: the monitor is gone already (its exit is recorded)


@attrs.frozen
class ExitStatus:
    """How a container's last run ended, as its monitor recorded it."""

    code: int | None  # 128+signal for a signal death; None: nothing recorded
    oom: bool = False
    recorded_at: float | None = None  # when the exit was recorded (epoch seconds)


@attrs.frozen
class RuntimeState:
    status: str  # created | running | paused | stopped
    pid: int = 0


class ContainerRuntime(Protocol):
    """What the container manager, health checks and recovery ask of the runtime."""

    async def reset(self, target: RuntimeTarget) -> None:
        """Forget the previous run before a start: its exit record and the runtime's state."""

    async def create(self, target: RuntimeTarget, options: LaunchOptions) -> Created:
        """Start the container's monitor and create the container (not started).
        RuntimeCreateFailed carries the OCI runtime's refusal."""

    async def start(self, target: RuntimeTarget) -> None:
        """Start the created container's process."""

    async def kill(self, target: RuntimeTarget, signal: int) -> None:
        """Send a signal to the container's init; ContainerGone if it already exited."""

    async def kill_process(self, pid: int) -> None:
        """SIGKILL a container's init by its host pid, when the runtime's kill did not end it."""

    async def pause(self, target: RuntimeTarget) -> None: ...

    async def resume(self, target: RuntimeTarget) -> None: ...

    async def update(self, target: RuntimeTarget, resources: Mapping[str, Any], *,
                     unlimited_pids: bool = False) -> None:
        """New limits (OCI `linux.resources`) for a live container; `unlimited_pids` also
        lifts the pids limit the resources leave out."""

    async def resize(self, target: RuntimeTarget, height: int, width: int) -> None:
        """The terminal's new size (a failure is logged: conmon may be exiting)."""

    async def reopen_log(self, target: RuntimeTarget) -> bool:
        """Ask the monitor to reopen the container's log (after a rotation renamed it)."""

    async def delete(self, target: RuntimeTarget) -> None:
        """Forget the container in the OCI runtime, killing what is left; missing is fine."""

    async def release(self, target: RuntimeTarget) -> None:
        """At removal: what the container's runs left on the host (its cgroup)."""

    async def forget(self, container_id: str) -> None:
        """Delete a container from every usable OCI runtime (one whose create was cut short)."""

    async def state(self, target: RuntimeTarget) -> RuntimeState | None:
        """The OCI runtime's view of the container; None if it does not know it."""

    async def frozen(self, target: RuntimeTarget) -> bool | None:
        """Whether the freezer holds the container (None: cannot tell); cheaper than `state`."""

    async def exit_status(self, target: RuntimeTarget) -> ExitStatus:
        """The exit the monitor recorded for the last run."""

    async def adopt(self, target: RuntimeTarget, monitor_pid: int) -> ExitWatch | None:
        """A watch on the monitor still running this container (pid 0: the one its pid file
        names), or None if there is none. A pid reused by another process is not adopted."""

    def command_line(self, runtime: str) -> OCIRuntime:
        """The OCI runtime's command line, for the execs that run it themselves."""
