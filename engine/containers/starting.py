"""Starting a container: its network, its bundle, its monitor, then its process.

A start forgets the previous run, attaches the networks (with its links' containers, or
in another container's namespace: `links`, `netshare`), prepares the bundle (overlay
root, /etc files, config.json), has the runtime create the container under its monitor,
connects the attach sessions waiting for it (`docker run` attaches before it starts:
output is not replayed) and starts it. Only then is the record `running` (persisted),
its exit watched and its companion tasks started. A start that fails on the way is
undone; Docker's words and exit codes say whether the command was missing (127) or
not executable (126).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import trio

from engine.containers import companions, links, namespaces, netshare, removal, restart_loop
from engine.containers.health import has_health_check
from engine.containers.model import Container, HealthState, Status, StopReason
from engine.errors import Conflict, EngineError, InvalidParameter, NotModified, SystemFailure
from engine.runtime.interface import Created, LaunchOptions, RuntimeCreateFailed

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager


async def start_locked(m: ContainerManager, c: Container, *, reset_restart_state: bool) -> None:
    """Start `c`; the caller holds its `op_lock`."""
    st = c.state
    if st.status is Status.PAUSED:
        raise Conflict("cannot start a paused container, try unpause instead")
    if st.status is Status.RUNNING:
        raise NotModified()
    if st.status in (Status.REMOVING, Status.DEAD):
        raise Conflict("container is marked for removal and cannot be started")
    if c.host.log_config.type not in m.log_drivers:
        raise InvalidParameter(
            f"logger: no log driver named '{c.host.log_config.type}' is registered "
            "(was its plugin uninstalled?)")
    live = m.live_of(c)
    paths = m.paths(c)
    target = m.target(c)
    if reset_restart_state:
        st.restart_count = 0
        st.manually_stopped = False
        restart_loop.forget(st)
        live.backoff.reset()
    live.stop_requested = False
    live.stop_reason = StopReason.USER
    live.user_signal = 0
    live.user_signal_deadline = 0.0
    created: Created | None = None
    try:
        await m.runtime.reset(target)
        owner = netshare.owner_at_start(m, c)
        if owner is not None:
            netshare.take_names(m, c, owner)
        linked, link_env = links.at_start(m, c)
        attachment = await m.attach_network(c, linked=linked, owner=owner)
        await m.bundles.prepare(c, paths, cgroups_path=target.cgroup,
                                attachment=attachment, volumes=m.volumes, link_env=link_env,
                                etc_from=m.paths(owner) if owner is not None else None,
                                namespaces=namespaces.at_start(m, c))
        options = LaunchOptions(
            name=c.name,
            log_path=paths.log,
            stdin=c.spec.open_stdin,
            tty=c.spec.tty,
            # Docker closes stdin when a client leaves only for StdinOnce without a TTY
            leave_stdin_open=c.spec.tty or not c.spec.stdin_once,
            keep_log=companions.keeps_log_file(m, c),
        )
        created = await m.runtime.create(target, options)
        await m.attach.connect_pending(c.id, paths.bundle)
        await m.runtime.start(target)
    except BaseException as exc:
        if created is not None and created.watch is not None:
            created.watch.close()
        message = exc.message if isinstance(exc, EngineError) else "the start was interrupted"
        with trio.CancelScope(shield=True):
            await _start_failed(m, c, message, remove=isinstance(exc, Exception))
        if isinstance(exc, RuntimeCreateFailed):
            raise _start_error(exc.message, c.path) from None
        raise
    st.status = Status.RUNNING
    st.pid = created.pid
    st.conmon_pid = created.monitor_pid
    st.started_at = dt.datetime.now(dt.timezone.utc)
    st.exit_code = 0
    st.error = ""
    st.oom_killed = False
    st.stop_reason = StopReason.NONE
    st.boot_id = m.host.boot_id
    st.has_been_started = True
    st.health = HealthState() if has_health_check(c.spec) else None
    await m.table.save(c)
    m.publish(c, "start")
    m.watch_exit(c, created.watch)
    m.start_run_tasks(c)
    await links.refresh_parents(m, c)


async def _start_failed(m: ContainerManager, c: Container, message: str, *, remove: bool) -> None:
    """Undo a start; an auto-remove container is removed (its `wait --removed` returns)."""
    await m.runtime.delete(m.target(c))
    await m.detach_network(c)
    await m.unmount_rootfs(c)
    if m.volumes is not None:
        await m.volumes.unmount_after_stop(c.id, c.mounts)
    m.attach.start_failed(c.id, message)
    c.state.error = message
    c.state.exit_code = _start_exit_code(message)
    if c.state.status is Status.RESTARTING:
        c.state.status = Status.EXITED
        m.live_of(c).take_stopped().fire(c.state.exit_code, message)
    await m.table.save(c)
    if remove and c.host.auto_remove:
        await removal.remove_locked(m, c)


def _command_problem(message: str) -> str:
    """What a failed start says about the command: "missing", "denied" or "" (neither).

    Checked in the docker CLI's order (a missing file before a permission problem), so the
    recorded exit code and the one the CLI exits with agree.
    """
    lowered = message.lower()
    if "not found" in lowered or "no such file" in lowered:
        return "missing"
    if "permission denied" in lowered:
        return "denied"
    return ""


def _start_exit_code(message: str) -> int:
    return {"missing": 127, "denied": 126}.get(_command_problem(message), 128)


def _start_error(message: str, path: str) -> Exception:
    """Docker reports a missing or non-executable command as a 400, other failures as 500.

    The docker CLI picks its exit code (127, 126) from Docker's own wording of these
    errors, so crun's words are followed by Docker's.
    """
    text = f"failed to create task for container: OCI runtime create failed: {message}"
    problem = _command_problem(message)
    if problem == "missing":
        return InvalidParameter(f'{text}: exec: "{path}": executable file not found in $PATH')
    if problem == "denied":
        return InvalidParameter(f'{text}: exec: "{path}": permission denied')
    return SystemFailure(text)
