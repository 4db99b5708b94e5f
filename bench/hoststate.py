"""Host state the peer engines change outside their own directories, and undoing it.

dockerd and netavark (Podman's network backend) leave things behind when they stop: the
docker0 bridge, iptables chains and rules, the FORWARD policy set to DROP, ip_forward=1,
files in /run and /etc, a bind mount on /run/netns, top-level cgroups. The benchmark takes
a snapshot before it starts any engine and, at the end, removes only what appeared since
*and* belongs to an engine by name, so state that someone else made meanwhile is left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ENGINE_LINK = re.compile(r"^(docker0|br-[0-9a-f]{12}|podman\d+|cni-podman\d+)$")
ENGINE_RULE = re.compile(r"DOCKER|docker0|NETAVARK|netavark|CNI-|podman\d")
IPTABLES = ("iptables", "ip6tables")
TABLES = ("filter", "nat")
SYSCTLS = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding")
# removed whole when they were absent before (files, or directories only engines use)
ENGINE_PATHS = (
    "/etc/docker/key.json", "/run/docker", "/run/containerd", "/run/containers", "/run/libpod",
    "/dev/shm/libpod_lock", "/var/lib/docker", "/var/lib/containerd", "/var/lib/containers",
    "/var/lib/cni", "/run/cni",
)
# removed only when absent before and empty now
ENGINE_DIRS = ("/etc/docker", "/etc/containers/networks")
NETNS_DIR = "/run/netns"
ENGINE_CGROUPS = ("docker", "libpod_parent")
CGROUP_ROOT = Path("/sys/fs/cgroup")

TableKey = tuple[str, str]


@dataclass
class IptablesTable:
    """One `iptables-save -t TABLE`: chain policies ('-' for user chains) and rule lines."""

    chains: dict[str, str] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)


@dataclass
class HostState:
    """The parts of the host an engine may change, as they were at one moment."""

    links: set[str]
    tables: dict[TableKey, IptablesTable]
    sysctls: dict[str, str]
    paths: set[str]
    netns_mounted: bool
    cgroups: set[str]


def take() -> HostState:
    """Snapshot now, before any engine starts."""
    return HostState(
        links=_links(),
        tables={(binary, table): _save(binary, table) for binary in IPTABLES for table in TABLES},
        sysctls={path: _read(path) for path in SYSCTLS if os.path.exists(path)},
        paths={p for p in (*ENGINE_PATHS, *ENGINE_DIRS, NETNS_DIR) if os.path.lexists(p)},
        netns_mounted=_is_mountpoint(NETNS_DIR),
        cgroups=_cgroups(),
    )


def restore(before: HostState, own_cgroups: tuple[str, ...] = ()) -> list[str]:
    """Undo what engines added since `before`; returns what was done, one line per action.

    `own_cgroups` are top-level cgroup names this run itself asked for (moord's
    --cgroup-parent): their empty directories are pruned even if they existed before.
    """
    notes: list[str] = []
    for key, old in before.tables.items():
        notes += _restore_table(key, old)
    notes += _remove_links(before.links)
    notes += _restore_sysctls(before.sysctls)
    notes += _release_netns(before)
    notes += _remove_paths(before.paths)
    notes += _prune_cgroups(before.cgroups, own_cgroups)
    return notes


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _save(binary: str, table: str) -> IptablesTable:
    """Parse `BINARY-save -t TABLE`; an absent binary or table reads as empty."""
    try:
        out = subprocess.run([f"{binary}-save", "-t", table], capture_output=True, text=True,
                             check=False, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return IptablesTable()
    parsed = IptablesTable()
    for line in out.splitlines():
        if line.startswith(":"):
            name, policy = line[1:].split()[:2]
            parsed.chains[name] = policy
        elif line.startswith("-A "):
            parsed.rules.append(line)
    return parsed


def _iptables(binary: str, table: str, *args: str) -> str | None:
    """Run one iptables command; the error text, or None when it worked."""
    result = subprocess.run([binary, "-w", "-t", table, *args], capture_output=True, text=True,
                            check=False, timeout=30)
    return None if result.returncode == 0 else (result.stderr.strip() or f"exit {result.returncode}")


def _restore_table(key: TableKey, old: IptablesTable) -> list[str]:
    """Delete engine rules and chains that are new, put changed built-in policies back."""
    binary, table = key
    now = _save(binary, table)
    notes: list[str] = []
    new_chains = [c for c in now.chains if c not in old.chains and ENGINE_RULE.search(c)]
    extra = Counter(now.rules) - Counter(old.rules)
    for rule in reversed(now.rules):
        chain = rule.split()[1]
        if extra[rule] <= 0 or chain in new_chains or not ENGINE_RULE.search(rule):
            continue
        extra[rule] -= 1
        err = _iptables(binary, table, "-D", *shlex.split(rule)[1:])
        notes.append(f"{binary} -t {table}: deleted `{rule}`" + (f" FAILED: {err}" if err else ""))
    for chain in new_chains:
        _iptables(binary, table, "-F", chain)
    for chain in new_chains:
        err = _iptables(binary, table, "-X", chain)
        notes.append(f"{binary} -t {table}: removed chain {chain}" + (f" FAILED: {err}" if err else ""))
    for chain, policy in old.chains.items():
        if policy != "-" and now.chains.get(chain, policy) != policy:
            err = _iptables(binary, table, "-P", chain, policy)
            notes.append(f"{binary} -t {table}: policy of {chain} back to {policy}"
                         + (f" FAILED: {err}" if err else ""))
    return notes


def _remove_links(before: set[str]) -> list[str]:
    notes = []
    for name in sorted(_links() - before):
        if ENGINE_LINK.match(name):
            result = subprocess.run(["ip", "link", "delete", name], capture_output=True, text=True,
                                    check=False)
            notes.append(f"deleted link {name}" + ("" if result.returncode == 0
                                                   else f" FAILED: {result.stderr.strip()}"))
    return notes


def _restore_sysctls(before: dict[str, str]) -> list[str]:
    notes = []
    for path, value in before.items():
        if _read(path) != value:
            with open(path, "w") as f:
                f.write(value)
            notes.append(f"{path} back to {value}")
    return notes


def _is_mountpoint(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _release_netns(before: HostState) -> list[str]:
    """Podman bind-mounts /run/netns on itself; undo that once no namespace is left in it."""
    if before.netns_mounted or not _is_mountpoint(NETNS_DIR) or os.listdir(NETNS_DIR):
        return []
    result = subprocess.run(["umount", NETNS_DIR], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return [f"umount {NETNS_DIR} FAILED: {result.stderr.strip()}"]
    if NETNS_DIR not in before.paths:
        with contextlib.suppress(OSError):
            os.rmdir(NETNS_DIR)
    return [f"unmounted {NETNS_DIR}"]


def _remove_paths(before: set[str]) -> list[str]:
    notes = []
    for path in ENGINE_PATHS:
        if path in before or not os.path.lexists(path):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)
        notes.append(f"removed {path}")
    for path in ENGINE_DIRS:
        if path not in before and os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
            notes.append(f"removed empty {path}")
    return notes


def _cgroups() -> set[str]:
    """Top-level cgroups as 'hierarchy/name' in every mounted hierarchy."""
    found: set[str] = set()
    if not CGROUP_ROOT.is_dir():
        return found
    for hierarchy in CGROUP_ROOT.iterdir():
        with contextlib.suppress(OSError):
            found.update(f"{hierarchy.name}/{d.name}" for d in hierarchy.iterdir() if d.is_dir())
    return found


def _prune_cgroups(before: set[str], own: tuple[str, ...]) -> list[str]:
    """rmdir empty engine cgroups bottom-up; a cgroup that still holds a process stays."""
    removed: Counter[str] = Counter()
    busy: Counter[str] = Counter()
    for entry in sorted(_cgroups()):
        name = entry.split("/", 1)[1]
        if name in own or (name in ENGINE_CGROUPS and entry not in before):
            left = _rmdir_tree(CGROUP_ROOT / entry)
            (busy if left else removed)[name] += 1
    notes = [f"removed cgroup /{name} ({n} hierarchies)" for name, n in sorted(removed.items())]
    notes += [f"cgroup /{name} still busy in {n} hierarchies" for name, n in sorted(busy.items())]
    return notes


def _rmdir_tree(top: Path) -> int:
    """Remove a cgroup directory tree deepest first; how many directories could not go."""
    dirs = [p for p in top.rglob("*") if p.is_dir()]
    left = 0
    for d in [*sorted(dirs, key=lambda p: len(p.parts), reverse=True), top]:
        try:
            d.rmdir()
        except OSError:
            left += 1
    return left
