"""What the health tests share: inspect, State.Health, polling with a generous deadline
(never a timing assertion), and the container's root as moord mounted it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.daemon import Moord

DEADLINE = 60.0


def inspect_container(moord: Moord, cid: str) -> dict[str, Any]:
    out = moord.docker("inspect", cid).stdout
    return dict(json.loads(out)[0])


def health_of(moord: Moord, cid: str) -> dict[str, Any] | None:
    health = inspect_container(moord, cid)["State"].get("Health")
    return dict(health) if health is not None else None


def wait_until(what: str, check: Callable[[], bool], moord: Moord,
               deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\nmoord log:\n{moord.log_tail(40)}")


def status_is(moord: Moord, cid: str, status: str) -> Callable[[], bool]:
    def check() -> bool:
        health = health_of(moord, cid)
        return health is not None and health["Status"] == status

    return check


def rootfs(moord: Moord, cid: str) -> Path:
    """The container's root as moord mounted it; the container sees every change at once."""
    return moord.data_root / "containers" / cid / "bundle" / "rootfs"
