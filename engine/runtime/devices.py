"""Device nodes in an OCI spec: `linux.devices`, the device cgroup's rules, the host's
/dev as Docker hands it to a privileged container, `--device` (a host node, or every
node below a host directory) and `--device-cgroup-rule`."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from engine.errors import InvalidParameter, SystemFailure


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


_CGROUP_RULE = re.compile(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})")


@attrs.frozen
class DeviceRule:
    """One `--device-cgroup-rule`: allow a type of device, by major and minor (None: any)."""

    type: str  # "a", "c" or "b"
    major: int | None
    minor: int | None
    access: str


def parse_cgroup_rule(text: str) -> DeviceRule:
    """`c 7:128 rwm`, `b *:* r`: Docker's format for a device cgroup rule."""
    found = _CGROUP_RULE.fullmatch(text)
    if found is None:
        raise InvalidParameter(f"invalid device cgroup rule format: '{text}'")
    kind, major, minor, access = found.groups()
    return DeviceRule(kind, None if major == "*" else int(major),
                      None if minor == "*" else int(minor), access)


def valid_permissions(mode: str) -> bool:
    """A device's cgroup permissions: some of r, w and m, each once."""
    return bool(mode) and set(mode) <= set("rwm") and len(set(mode)) == len(mode)


def devices_from_path(host_path: str, container_path: str,
                      permissions: str) -> tuple[Device, ...]:
    """The device node at `host_path` (a link to one is followed), or every device node
    below it if it is a directory, as `container_path` in the container. Blocking."""
    resolved = os.path.realpath(host_path) if os.path.islink(host_path) else host_path
    try:
        found = _device_at(resolved, container_path, permissions)
        if found is not None:
            return (found,)
        problem = "not a device node"
        if os.path.isdir(resolved):
            below = []
            for directory, _, files in sorted(os.walk(resolved)):
                for name in sorted(files):
                    inner = os.path.join(directory, name)
                    moved = container_path + inner[len(resolved):]
                    device = _device_at(inner, moved, permissions)
                    if device is not None:
                        below.append(device)
            if below:
                return tuple(below)
    except OSError as exc:
        problem = exc.strerror or str(exc)
    raise SystemFailure("error gathering device information while adding custom device "
                        f"\"{host_path}\": {problem}")


def _device_at(path: str, container_path: str, permissions: str) -> Device | None:
    st = os.lstat(path)
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return Device(path=container_path, type=kind, major=os.major(st.st_rdev),
                  minor=os.minor(st.st_rdev), file_mode=stat.S_IMODE(st.st_mode),
                  uid=st.st_uid, gid=st.st_gid, permissions=permissions)


def device_rules(privileged: bool, devices: Iterable[Device],
                 extra: Iterable[DeviceRule] = ()) -> list[dict[str, Any]]:
    """The device cgroup's allow-list (`linux.resources.devices`): Docker's, then
    `devices`, then the `--device-cgroup-rule`s (a privileged container: everything)."""
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
    for extra_rule in extra:
        rules.append(rule(True, extra_rule.major, extra_rule.minor, extra_rule.type,
                          extra_rule.access))
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
