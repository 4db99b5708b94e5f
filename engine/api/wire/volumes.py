"""Volumes and container mounts as Docker's JSON (Engine API 1.50 `Volume`, `MountPoint`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from engine.volumes.model import MountPoint, Volume


def created_at(t: dt.datetime) -> str:
    """Docker's `CreatedAt`: RFC 3339 to the second (the local driver's `time.RFC3339`)."""
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def volume_json(volume: Volume, status: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A `Volume`; `Status` only when the driver reports one, `UsageData` never (no `system df`)."""
    out: dict[str, Any] = {
        "CreatedAt": created_at(volume.created),
        "Driver": volume.driver,
        "Labels": dict(volume.labels),
        "Mountpoint": volume.mountpoint,
        "Name": volume.name,
        "Options": dict(volume.options),
        "Scope": volume.scope,
    }
    if status:
        out["Status"] = dict(status)
    return out


def prune_json(removed: list[str], reclaimed: int) -> dict[str, Any]:
    return {"VolumesDeleted": list(removed), "SpaceReclaimed": reclaimed}


def mount_point_json(mp: MountPoint) -> dict[str, Any]:
    """One entry of a container's `Mounts` (inspect and list), in Docker's key order.

    `Name` and `Driver` appear for volumes only, as Docker leaves them out when empty.
    """
    out: dict[str, Any] = {"Type": mp.type}
    if mp.name:
        out["Name"] = mp.name
    out["Source"] = mp.source
    out["Destination"] = mp.destination
    if mp.driver:
        out["Driver"] = mp.driver
    out.update({"Mode": mp.mode, "RW": mp.rw, "Propagation": mp.propagation})
    return out


def mounts_json(mount_points: Iterable[MountPoint]) -> list[dict[str, Any]]:
    """A container's `Mounts`: everything but `--tmpfs` mounts, which Docker doesn't list."""
    return [mount_point_json(mp) for mp in mount_points if mp.listed]


__all__ = ["created_at", "mount_point_json", "mounts_json", "prune_json", "volume_json"]
