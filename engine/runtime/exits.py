"""Learning that a container exited, with no parent-child link to its monitor.

conmon double-forks, so it is not our child, and it survives moord's restarts. A
pidfd on the conmon process becomes readable when conmon exits (which it does right
after writing the exit file), and works the same for a conmon started by a previous
moord. Never `waitpid(-1)`: it would steal trio's own children's statuses.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import attrs
import trio


def open_conmon_pidfd(pid: int, container_id: str) -> int | None:
    """A pidfd for conmon `pid`, if that pid is still the conmon of `container_id`.

    The cmdline check guards against pid reuse after a reboot or a long downtime.
    """
    if pid <= 0:
        return None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        os.close(fd)
        return None
    if not argv or not argv[0].endswith(b"conmon") or container_id.encode() not in argv:
        os.close(fd)
        return None
    return fd


async def wait_for_pidfd(fd: int) -> None:
    """Wait until the process behind `fd` has exited (it may still be a zombie)."""
    await trio.lowlevel.wait_readable(fd)


def close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


@attrs.define(eq=False)
class PidfdWatch:
    """An `ExitWatch` on a conmon process through its pidfd."""

    fd: int
    monitor_pid: int

    async def wait(self) -> None:
        await wait_for_pidfd(self.fd)

    def close(self) -> None:
        close_fd(self.fd)


def watch_conmon(pid: int, container_id: str) -> PidfdWatch | None:
    """A watch on conmon `pid` if it still is the conmon of `container_id` (see
    `open_conmon_pidfd`)."""
    fd = open_conmon_pidfd(pid, container_id)
    return None if fd is None else PidfdWatch(fd, pid)


def read_exit_file(userdata: Path) -> int | None:
    """The exit status conmon recorded (decimal, 128+signal for a signal death)."""
    try:
        text = (userdata / "exit").read_text().strip()
    except FileNotFoundError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def oom_recorded(userdata: Path) -> bool:
    return (userdata / "oom").exists()


def exit_recorded_at(userdata: Path) -> float | None:
    """When conmon wrote the exit file (its mtime), None without one."""
    try:
        return (userdata / "exit").stat().st_mtime
    except FileNotFoundError:
        return None


def clear_run_files(userdata: Path) -> None:
    """Forget a run's exit record and pid files before conmon could write new ones."""
    for name in ("exit", "oom", "pidfile", "conmon.pid"):
        with contextlib.suppress(FileNotFoundError):
            (userdata / name).unlink()


def read_pid_file(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def boot_id() -> str:
    """The kernel's boot id: a change means the host rebooted (or crashed) since."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
