"""Which cgroup layout the host has, and placing a process (conmon) into a cgroup.

Three layouts exist: v1 (controllers on separate hierarchies), v2 (one unified
hierarchy) and hybrid (v1 plus a v2 hierarchy at /sys/fs/cgroup/unified). crun 1.8
refuses a hybrid host unless the v2 hierarchy has no controllers; `crun_blocker`
says why in words a person can act on. Everything here blocks (it touches cgroupfs).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import attrs

CGROUP_ROOT = Path("/sys/fs/cgroup")


@attrs.frozen
class CgroupLayout:
    version: int  # 1 or 2: which one the containers' resources are set on
    hybrid: bool
    v2_controllers: tuple[str, ...]  # controllers enabled on the v2 hierarchy
    v1_mounts: tuple[tuple[str, Path], ...]  # (hierarchy name, mount point), v1 only
    unified_mount: Path | None

    @property
    def driver(self) -> str:
        return "cgroupfs"

    def crun_blocker(self) -> str | None:
        """Why crun cannot run containers on this host, or None if it can."""
        if self.hybrid and self.v2_controllers:
            names = " ".join(self.v2_controllers)
            return (
                "this host mixes cgroup v1 and v2 (hybrid) and the v2 hierarchy has controllers "
                f"enabled ({names}); crun refuses such hosts. Bind each of them to a v1 hierarchy, "
                f"e.g. `mkdir -p /sys/fs/cgroup/{self.v2_controllers[0]} && mount -t cgroup -o "
                f"{self.v2_controllers[0]} cgroup /sys/fs/cgroup/{self.v2_controllers[0]}` "
                "(scripts/prepare-host.sh does this), or run with --runtime runc"
            )
        return None


def detect() -> CgroupLayout:
    """Read /proc/self/mounts to learn the host's cgroup layout."""
    v1: list[tuple[str, Path]] = []
    unified: Path | None = None
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 4:
                continue
            mountpoint, fstype, options = Path(fields[1]), fields[2], fields[3].split(",")
            if fstype == "cgroup2":
                unified = mountpoint
            elif fstype == "cgroup":
                names = [o for o in options if o not in ("rw", "ro", "relatime", "nosuid",
                                                         "nodev", "noexec", "clone_children")
                         and not o.startswith("release_agent=")]
                v1.append((",".join(names), mountpoint))
    if unified is not None and not v1:
        return CgroupLayout(2, False, _controllers(unified), (), unified)
    if not v1 and unified is None:
        return CgroupLayout(2, False, (), (), None)
    return CgroupLayout(1, unified is not None,
                        _controllers(unified) if unified else (), tuple(v1), unified)


def _controllers(mount: Path) -> tuple[str, ...]:
    try:
        return tuple((mount / "cgroup.controllers").read_text().split())
    except OSError:
        return ()


def _hierarchy_dirs(layout: CgroupLayout, relpath: str) -> list[tuple[str, Path]]:
    rel = relpath.strip("/")
    dirs = [(name, mount / rel) for name, mount in layout.v1_mounts]
    if layout.unified_mount is not None:
        dirs.append(("unified", layout.unified_mount / rel))
    return dirs


def cgroup_pids(layout: CgroupLayout, relpath: str) -> set[int]:
    """Every process in cgroup `relpath` and below (blocking): `top` selects by these."""
    candidates = ([layout.unified_mount / relpath.strip("/")]
                  if layout.version == 2 and layout.unified_mount is not None else
                  [mount / relpath.strip("/") for name, mount in layout.v1_mounts
                   if set(name.split(",")) & {"pids", "memory", "cpu"}])
    for directory in candidates:
        if not directory.is_dir():
            continue
        pids: set[int] = set()
        for procs in directory.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(x) for x in procs.read_text().split() if x.isdigit())
        return pids
    return set()


def is_frozen(layout: CgroupLayout, relpath: str) -> bool | None:
    """Whether the runtime's freezer holds cgroup `relpath` (None: cannot tell).

    One file read, where `crun state` would be a process: re-adopting containers after
    a restart uses it to catch a pause that moord did not live to record.
    """
    rel = relpath.strip("/")
    candidates: list[tuple[Path, str]] = []
    if layout.version == 2 and layout.unified_mount is not None:
        candidates.append((layout.unified_mount / rel / "cgroup.freeze", "1"))
    for name, mount in layout.v1_mounts:
        if "freezer" in name.split(","):
            candidates.append((mount / rel / "freezer.state", "FROZEN"))
    for path, frozen in candidates:
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        return value == frozen or value == "FREEZING"
    return None


def place_process(layout: CgroupLayout, pid: int, relpath: str) -> list[str]:
    """Move `pid` into cgroup `relpath` in every hierarchy; returns what failed (in words).

    Used for conmon, so a daemon stopped by its service manager does not take the
    containers' monitors with it.
    """
    problems: list[str] = []
    for name, directory in _hierarchy_dirs(layout, relpath):
        try:
            _ensure_cgroup(name, directory)
            (directory / "cgroup.procs").write_text(f"{pid}\n")
        except OSError as exc:
            problems.append(f"{name}: {exc.strerror or exc}")
    return problems


def _ensure_cgroup(name: str, directory: Path) -> None:
    created = []
    missing = directory
    while not missing.exists():
        created.append(missing)
        missing = missing.parent
    for path in reversed(created):
        path.mkdir()
        if "cpuset" in name.split(","):
            # a new v1 cpuset cgroup is empty; a task can't join until it has cpus and mems
            for knob in ("cpuset.cpus", "cpuset.mems"):
                with contextlib.suppress(OSError):
                    (path / knob).write_text((path.parent / knob).read_text())


def remove_cgroup(layout: CgroupLayout, relpath: str) -> None:
    """Remove an empty cgroup from every hierarchy (busy or missing ones are left)."""
    for _, directory in _hierarchy_dirs(layout, relpath):
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def lift_pids_limit(layout: CgroupLayout, relpath: str) -> None:
    """Write `max` to the cgroup's pids.max (blocking): crun 1.8's update writes -1 for
    an unlimited pids limit, which cgroup v1 refuses."""
    rel = relpath.strip("/")
    if layout.version == 2 and layout.unified_mount is not None:
        targets = [layout.unified_mount / rel / "pids.max"]
    else:
        targets = [mount / rel / "pids.max" for name, mount in layout.v1_mounts
                   if "pids" in name.split(",")]
    for target in targets:
        if target.exists():
            target.write_text("max")
