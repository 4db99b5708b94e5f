"""The OCI runtime's command line (crun or runc): start, kill, pause, resume, update, state,
delete.

conmon runs `create`; everything after that is ours. Each call is a short-lived
process started with trio's process API, so the trio thread never blocks on it.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import attrs
import trio

from engine.errors import SystemFailure
from engine.runtime.interface import ContainerGone

log = logging.getLogger(__name__)

_GONE_MARKERS = (
    "no such process",
    "not running",
    "does not exist",
    "no such file or directory",
    "container not found",
    "cannot find",
)


@attrs.frozen
class OCIRuntime:
    name: str  # crun | runc
    path: str
    root: Path  # our own --root, never shared with podman's /run/crun

    def _argv(self, *args: str) -> list[str]:
        return [self.path, f"--root={self.root}", *args]

    async def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        result = await trio.run_process(
            self._argv(*args),
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        if check and result.returncode != 0:
            message = _clean(result.stderr)
            if _looks_gone(message):
                raise ContainerGone(message)
            raise SystemFailure(f"{self.name} {args[0]}: {message or 'exit ' + str(result.returncode)}")
        return result

    async def start(self, container_id: str) -> None:
        await self._run("start", container_id)

    async def kill(self, container_id: str, signal: str | int) -> None:
        """Send a signal to the container's init; ContainerGone if it already exited."""
        await self._run("kill", container_id, str(signal))

    async def pause(self, container_id: str) -> None:
        await self._run("pause", container_id)

    async def resume(self, container_id: str) -> None:
        await self._run("resume", container_id)

    async def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """New cgroup limits for a live container (OCI `linux.resources`, read from stdin)."""
        result = await trio.run_process(
            self._argv("update", "--resources=/dev/stdin", container_id),
            stdin=json.dumps(resources).encode(), capture_stdout=True, capture_stderr=True,
            check=False)
        if result.returncode != 0:
            message = _clean(result.stderr)
            if _looks_gone(message):
                raise ContainerGone(message)
            raise SystemFailure(f"{self.name} update: {message or 'exit ' + str(result.returncode)}")

    async def delete(self, container_id: str, *, force: bool = False) -> None:
        """Forget the container; missing is fine."""
        args = ["delete", "--force", container_id] if force else ["delete", container_id]
        result = await self._run(*args, check=False)
        if result.returncode != 0:
            message = _clean(result.stderr)
            if not _looks_gone(message):
                log.warning("%s delete %s: %s", self.name, container_id[:12], message)

    async def state(self, container_id: str) -> dict[str, Any] | None:
        """The runtime's view (`status`: created, running, paused, stopped), None if unknown."""
        result = await self._run("state", container_id, check=False)
        if result.returncode != 0:
            return None
        try:
            state = json.loads(result.stdout)
        except ValueError:
            return None
        return state if isinstance(state, dict) else None


def _clean(stderr: bytes) -> str:
    text = stderr.decode(errors="replace").strip()
    # crun prints "crun: <msg>"; runc logs JSON-ish "level=error msg=..."
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines)


def _looks_gone(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _GONE_MARKERS)
