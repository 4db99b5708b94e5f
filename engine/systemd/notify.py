"""sd_notify: tell the service manager how moord is doing, one datagram per change.

The protocol (sd_notify(3)): newline-separated `KEY=value` assignments in one datagram to
the unix socket named by `$NOTIFY_SOCKET`; a name starting with '@' is in the abstract
namespace. Without the variable every call is a no-op, so moord run by hand behaves as
before. Sends never block: a manager that stops reading costs a logged warning, not a
stalled event loop.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping

log = logging.getLogger("moord.notify")

#: What the manager sets for its service and what moord's children must not inherit
#: (crun, for one, would otherwise wire the container to moord's notify socket).
MANAGER_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(name: str) -> str | bytes:
    """`$NOTIFY_SOCKET` as an address for sendto: '@x' is the abstract name '\\0x'."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    if not name.startswith("/"):
        raise ValueError(f"NOTIFY_SOCKET must be an absolute path or start with '@': {name!r}")
    return name


def watchdog_interval(environ: MutableMapping[str, str], pid: int | None = None) -> float | None:
    """How often to ping (s): half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises.

    None when there is no watchdog, or when `$WATCHDOG_PID` names another process.
    """
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    watchdog_pid = environ.get("WATCHDOG_PID", "")
    if watchdog_pid and watchdog_pid != str(os.getpid() if pid is None else pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", usec)
        return None
    if value <= 0:
        return None
    return value / 2 / 1_000_000


class Notifier:
    """The sending end of `$NOTIFY_SOCKET` (inert when there is none)."""

    def __init__(self, name: str = "") -> None:
        self.address: str | bytes | None = socket_address(name) if name else None
        self._sock: socket.socket | None = None

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str]) -> Notifier:
        """Take `$NOTIFY_SOCKET` and remove the manager's variables from `environ`."""
        name = environ.get("NOTIFY_SOCKET", "")
        for key in MANAGER_VARIABLES:
            environ.pop(key, None)
        try:
            return cls(name)
        except ValueError as exc:
            log.warning("%s; not notifying the service manager", exc)
            return cls()

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send `KEY=value` assignments in one datagram; False when none went out."""
        if self.address is None:
            return False
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        payload = "\n".join(assignments).encode()
        try:
            self._sock.sendto(payload, socket.MSG_DONTWAIT, self.address)
        except OSError as exc:
            log.warning("notifying the service manager (%s) failed: %s", assignments[0], exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self) -> bool:
        """RELOADING=1 with the clock reading systemd's Type=notify-reload also asks for."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading the configuration")

    def stopping(self, status: str) -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
