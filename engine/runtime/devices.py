"""Device nodes in an OCI spec: `linux.devices`, the device cgroup's rules, and the
host's /dev as Docker hands it to a privileged container."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs


@attrs.frozen
class Device:
    """A device node to create in the container (`linux.devices`), allowed in its cgroup."""

    path: str
    type: str  # "c", "b" or "p"
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0
    permissions: str = "rwm"

    def to_oci(self) -> dict[str, Any]:
        return {"path": self.path, "type": self.type, "major": self.major, "minor": self.minor,
                "fileMode": self.file_mode, "uid": self.uid, "gid": self.gid}


def device_rules(privileged: bool, devices: Iterable[Device]) -> list[dict[str, Any]]:
    """The device cgroup's allow-list (`linux.resources.devices`): Docker's, then `devices`."""
    if privileged:
        return [{"allow": True, "access": "rwm"}]

    def rule(allow: bool, major: int | None, minor: int | None,
             kind: str = "c", access: str = "rwm") -> dict[str, Any]:
        out: dict[str, Any] = {"allow": allow, "type": kind}
        if major is not None:
            out["major"] = major
        if minor is not None:
            out["minor"] = minor
        out["access"] = access
        return out

    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for major, minor in ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)):
        rules.append(rule(True, major, minor))
    rules.append(rule(True, 136, None))  # /dev/pts/*: the runtimes allow it too
    rules.append(rule(True, 5, 2))  # /dev/ptmx
    rules.append(rule(False, 10, 229))  # /dev/fuse stays denied, as in Docker
    for dev in devices:
        rules.append(rule(True, dev.major, dev.minor, dev.type, dev.permissions))
    return rules


_SKIPPED_DEV_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def host_devices(root: Path = Path("/dev")) -> tuple[Device, ...]:
    """Every device node under /dev, as Docker gives a privileged container. Blocking."""
    found: list[Device] = []

    def walk(directory: Path) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.name not in _SKIPPED_DEV_DIRS:
                    walk(Path(entry.path))
                continue
            if entry.name == "console" and directory == root:
                continue
            if stat.S_ISCHR(st.st_mode):
                kind = "c"
            elif stat.S_ISBLK(st.st_mode):
                kind = "b"
            else:
                continue
            found.append(Device(path="/dev/" + os.path.relpath(entry.path, root), type=kind,
                                major=os.major(st.st_rdev), minor=os.minor(st.st_rdev),
                                file_mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
                                gid=st.st_gid))

    walk(root)
    return tuple(found)
