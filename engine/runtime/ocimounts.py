"""The mounts of an OCI spec: the `Mount` record, Docker's seven default mounts, tmpfs
options merged by Docker's rule, and the parents-first order."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any

import attrs

from engine.errors import InvalidParameter

DEFAULT_SHM_SIZE = 64 * 1024 * 1024


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Mount:
    """One OCI mount. Build binds and tmpfs with `Mount.bind` / `Mount.tmpfs`."""

    destination: str
    type: str
    source: str
    options: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)

    def to_oci(self) -> dict[str, Any]:
        return {"destination": self.destination, "type": self.type, "source": self.source,
                "options": list(self.options)}

    @classmethod
    def bind(cls, source: str, destination: str, *, readonly: bool = False,
             propagation: str = "rprivate", recursive: bool = True) -> Mount:
        """A bind mount as Docker writes one: `rbind`, `ro` if read-only, a propagation."""
        options = ["rbind" if recursive else "bind"]
        if readonly:
            options.append("ro")
        if propagation:
            options.append(propagation)
        return cls(destination, "bind", source, tuple(options))

    @classmethod
    def tmpfs(cls, destination: str, data: str = "") -> Mount:
        """A `--tmpfs` mount: noexec,nosuid,nodev,rprivate, then the user's options win."""
        options = ["noexec", "nosuid", "nodev", "rprivate"]
        options += [o for o in data.split(",") if o]
        return cls(destination, "tmpfs", "tmpfs", tuple(merge_tmpfs_options(options)))


_FLAG_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"ro", "rw"}), frozenset({"suid", "nosuid"}), frozenset({"dev", "nodev"}),
    frozenset({"exec", "noexec"}), frozenset({"sync", "async"}), frozenset({"dirsync"}),
    frozenset({"mand", "nomand"}), frozenset({"atime", "noatime"}),
    frozenset({"diratime", "nodiratime"}), frozenset({"relatime", "norelatime"}),
    frozenset({"strictatime", "nostrictatime"}), frozenset({"bind", "rbind"}),
    frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave",
               "unbindable", "runbindable"}),
)
_TMPFS_DATA_KEYS = frozenset({"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"})


def merge_tmpfs_options(options: Iterable[str]) -> list[str]:
    """Collapse tmpfs options so the last word on each flag or key wins (Docker's rule)."""
    seen: set[object] = set()
    kept: list[str] = []
    for option in reversed(list(options)):
        if option == "defaults":
            continue
        group = next((g for g in _FLAG_GROUPS if option in g), None)
        if group is not None:
            key: object = group
        else:
            name, sep, _ = option.partition("=")
            if not sep or name not in _TMPFS_DATA_KEYS:
                raise InvalidParameter(f'invalid tmpfs option "{option}"')
            key = name
        if key not in seen:
            seen.add(key)
            kept.append(option)
    kept.reverse()
    return kept


def default_mounts(shm_size: int = DEFAULT_SHM_SIZE) -> list[Mount]:
    """Docker's seven mounts (oci/defaults.go), /dev/shm sized."""
    return [
        Mount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        Mount("/dev/pts", "devpts", "devpts",
              ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
        Mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
        Mount("/sys/fs/cgroup", "cgroup", "cgroup", ("ro", "nosuid", "noexec", "nodev")),
        Mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        Mount("/dev/shm", "tmpfs", "shm",
              ("nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}")),
    ]


def clean_destination(dest: str) -> str:
    if not dest.startswith("/"):
        raise InvalidParameter(f"invalid mount config: mount path must be absolute: {dest}")
    cleaned = posixpath.normpath(dest)
    return "/" + cleaned.lstrip("/")


def _depth(dest: str) -> int:
    return len(dest.split("/"))


def sort_mounts(mounts: Iterable[Mount]) -> list[Mount]:
    """Parents before children (fewer path components first), otherwise in given order."""
    return sorted(mounts, key=lambda m: _depth(m.destination))
