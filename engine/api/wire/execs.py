"""`GET /exec/{id}/json`: an exec session in Docker's shape."""

from __future__ import annotations

from typing import Any

from engine.containers.execs import ExecSession


def exec_inspect(s: ExecSession) -> dict[str, Any]:
    return {
        "ID": s.id,
        "Running": s.running,
        "ExitCode": s.exit_code,
        "ProcessConfig": {
            "tty": s.tty,
            "entrypoint": s.argv[0] if s.argv else "",
            "arguments": s.argv[1:],
            "privileged": s.privileged,
            "user": s.user,
        },
        "OpenStdin": s.attach_stdin,
        "OpenStderr": s.attach_stderr,
        "OpenStdout": s.attach_stdout,
        "CanRemove": False,
        "ContainerID": s.container_id,
        "DetachKeys": s.detach_keys,
        "Pid": s.pid,
    }


__all__ = ["exec_inspect"]
