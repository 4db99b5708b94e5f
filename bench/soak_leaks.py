"""What a private moord holds on the host, by category, for the soak's before/after leak diff.

Everything is found by what belongs to this moord alone: its run directory (processes that
name it, mounts under it, files in its data root's containers dir), its cgroup parent, and
its network prefix (links and nftables tables are named with it).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path

from bench import procs
from bench.soak_analysis import counted

CGROUP_ROOT = Path("/sys/fs/cgroup")
NFT_HANDLE = re.compile(r"\s*# handle \d+$")


def snapshot(run_root: Path, data_root: Path, cgroup_parent: str, prefix: str,
             moord_pid: int | None) -> dict[str, set[str]]:
    """Every category as a set of printable items (a pid is part of a process's item)."""
    return {
        "processes": _processes(run_root, moord_pid),
        "mounts": _mounts(run_root),
        "cgroups": _cgroups(cgroup_parent),
        "links": _links(prefix),
        "nftables": _nft(prefix),
        "container files": _files(data_root / "containers"),
    }


def summary_counts(snap: dict[str, set[str]]) -> dict[str, int]:
    return {category: len(items) for category, items in snap.items()}


def process_counts(run_root: Path, moord_pid: int | None) -> dict[str, int]:
    """conmons, crun processes and the rest (container processes) that belong to this moord."""
    found = [p for p in procs.mentioning(str(run_root)) if p.pid != moord_pid]
    conmon = sum(1 for p in found if p.comm == "conmon")
    crun = sum(1 for p in found if p.comm == "crun")
    return {"conmon": conmon, "crun": crun, "other": len(found) - conmon - crun}


def _processes(run_root: Path, moord_pid: int | None) -> set[str]:
    """conmons, cruns and container processes (found by the run directory on their command
    line, with their descendants); moord itself is not a leak."""
    return {f"{p.comm}[{p.pid}]" for p in procs.mentioning(str(run_root)) if p.pid != moord_pid}


def _mounts(run_root: Path) -> set[str]:
    prefix = str(run_root.resolve())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return counted([p for p in points if p == prefix or p.startswith(prefix + "/")])


def _cgroups(parent: str) -> set[str]:
    """Directories under the cgroup parent in every mounted hierarchy, as 'hierarchy/path'."""
    found: set[str] = set()
    if not CGROUP_ROOT.is_dir():
        return found
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / parent
        with contextlib.suppress(OSError):
            if top.is_dir():
                found.update(f"{hierarchy.name}/{d.relative_to(hierarchy)}"
                             for d in top.rglob("*") if d.is_dir())
    return found


def _links(prefix: str) -> set[str]:
    """Bridges and veths named with the prefix."""
    return {name for name in os.listdir("/sys/class/net") if name.startswith(prefix)}


def _nft(prefix: str) -> set[str]:
    """The lines of this moord's nftables tables (ip and ip6), handles stripped: a new
    rule, chain, set or set element shows as a new line."""
    lines = []
    for family in ("ip", "ip6"):
        result = subprocess.run(["nft", "-a", "list", "table", family, prefix], capture_output=True,
                                text=True, check=False, timeout=30)
        if result.returncode == 0:
            lines += [f"{family}: {NFT_HANDLE.sub('', line).strip()}" for line in result.stdout.splitlines()
                      if line.strip() and line.strip() != "}"]
    return counted(lines)


def _files(top: Path) -> set[str]:
    if not top.is_dir():
        return set()
    return {str(p.relative_to(top)) for p in top.rglob("*")}
