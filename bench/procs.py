"""Reading /proc: the process tree, memory, and finding what a run left running.

The engines' helpers outlive them on purpose (containerd shims and conmons detach from
their daemon), so "what did this run start" is answered by the run's private directory:
every monitor and shim names a path under it on its command line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    """One line of the process table."""

    pid: int
    ppid: int
    comm: str
    state: str


def read_proc(pid: int) -> Proc | None:
    """The process's stat entry, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm sits in parentheses and may hold spaces or ')' itself: split at the last ')'
    head, _, tail = raw.rpartition(")")
    fields = tail.split()
    return Proc(pid=pid, ppid=int(fields[1]), comm=head.split("(", 1)[1], state=fields[0])


def all_procs() -> list[Proc]:
    procs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = read_proc(int(entry))
            if proc is not None:
                procs.append(proc)
    return procs


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def descendants(pid: int, procs: list[Proc] | None = None) -> list[Proc]:
    """Live (non-zombie) descendants of pid, parents before children."""
    table = procs if procs is not None else all_procs()
    children: dict[int, list[Proc]] = {}
    for p in table:
        children.setdefault(p.ppid, []).append(p)
    found: list[Proc] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            if child.state != "Z":
                found.append(child)
                queue.append(child.pid)
    return found


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(RSS, PSS) in kB from smaps_rollup: PSS splits shared pages among their users."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Rss", "Pss"):
                    values[key] = int(rest.split()[0])
    except OSError:
        return None
    if "Rss" not in values or "Pss" not in values:
        return None
    return values["Rss"], values["Pss"]


def mentioning(marker: str) -> list[Proc]:
    """Live processes whose command line names marker, with all their descendants."""
    table = all_procs()
    me = os.getpid()
    roots = [p for p in table
             if p.pid != me and p.state != "Z" and any(marker in arg for arg in cmdline(p.pid))]
    found = {p.pid: p for p in roots}
    for root in roots:
        found.update((d.pid, d) for d in descendants(root.pid, table))
    return sorted(found.values(), key=lambda p: p.pid)


def kill_all(procs: list[Proc]) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)


def unmount_under(root: Path) -> list[str]:
    """Unmount everything at or below root, deepest first (lazily if busy)."""
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    mine = [p for p in points if p == prefix or p.startswith(prefix + "/")]
    notes = []
    for point in sorted(set(mine), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
            notes.append(f"lazily unmounted {point}")
        else:
            notes.append(f"unmounted {point}")
    return notes
