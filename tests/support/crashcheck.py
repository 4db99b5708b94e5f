"""What moord's records say beside what the kernel says, for the crash test.

A record is only as good as its agreement with reality: after every `kill -9` and
restart of moord, each container's record is compared with the conmons, container
processes, overlay mounts and crun state that really exist for this daemon. Only this
daemon's things are looked at (its crun root, its cgroup parent, its data root), so
other daemons on the machine (other tests, other engineers) are never mistaken for leaks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import attrs

from tests.support.daemon import Moord

CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")
LIVE = ("running", "paused")
# statuses whose container must have nothing in the kernel: no conmon, no mount, no crun state
AT_REST = ("created", "exited", "dead", "restarting")
CORRUPT_MARK = "is unreadable"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@attrs.frozen
class Record:
    """The parts of `docker inspect` the invariants are about."""

    id: str
    name: str
    status: str
    pid: int

    @classmethod
    def from_inspect(cls, item: dict[str, object]) -> Record:
        state = item.get("State")
        assert isinstance(state, dict), item
        return cls(id=str(item["Id"]), name=str(item.get("Name", "")).lstrip("/"),
                   status=str(state.get("Status")), pid=int(state.get("Pid") or 0))


@attrs.frozen
class KernelView:
    """This daemon's footprint in the kernel and on disk, at one moment."""

    conmons: dict[str, tuple[int, ...]]  # container ID -> conmon pids (argv `-c <id>`)
    cgroup_pids: dict[str, tuple[int, ...]]  # container ID -> pids in <cgroup-parent>/<id>
    rootfs_mounts: frozenset[str]  # container IDs whose bundle/rootfs is a mount point
    netns_mounts: frozenset[str]  # container IDs whose network namespace is bind-mounted
    other_mounts: tuple[str, ...]  # mount points under the daemon's root that are no rootfs
    crun_dirs: frozenset[str]  # entries of <exec-root>/crun
    container_dirs: frozenset[str]  # entries of <data-root>/containers
    stored_ids: frozenset[str]  # <data-root>/state/containers/<id>.json
    cgroup_dirs: frozenset[str]  # container IDs with a cgroup directory in any hierarchy
    corrupt_files: tuple[str, ...]  # *.corrupt anywhere under <data-root>/state


def crun_root(d: Moord) -> Path:
    return d.exec_root / "crun"


def _proc_state(pid: int) -> str | None:
    """The one-letter state of pid (None once it is gone); `comm` may hold ')'."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rpartition(")")[2].split()[0]


def is_alive(pid: int) -> bool:
    """Alive and not a zombie: a zombie container init is a dead container."""
    state = _proc_state(pid) if pid > 0 else None
    return state is not None and state != "Z"


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def conmon_target(argv: list[str], runtime_root: str) -> str | None:
    """The container ID a conmon of this daemon monitors (`pgrep -f "conmon.* -c <id>"`)."""
    if not argv or not argv[0].endswith("conmon") or f"--root={runtime_root}" not in argv:
        return None
    try:
        return argv[argv.index("-c") + 1]
    except (ValueError, IndexError):
        return None


def cgroup_target(pid: int, parent: str) -> str | None:
    """The container ID whose cgroup (`/<parent>/<id>`) holds pid, if any."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    marker = f"/{parent}/"
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        if path.startswith(marker):
            leaf = path[len(marker):].split("/", 1)[0]
            if CONTAINER_ID.match(leaf):
                return leaf
    return None


def _processes(d: Moord) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    conmons: dict[str, list[int]] = {}
    members: dict[str, list[int]] = {}
    runtime_root = str(crun_root(d))
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if not is_alive(pid):
            continue
        target = conmon_target(_cmdline(pid), runtime_root)
        if target is not None:
            conmons.setdefault(target, []).append(pid)
        member = cgroup_target(pid, d.cgroup_parent)
        if member is not None:
            members.setdefault(member, []).append(pid)
    return conmons, members


def _unescape_mountinfo(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_points_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo") as f:
        points = [_unescape_mountinfo(line.split()[4]) for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def _mounts(d: Moord) -> tuple[frozenset[str], frozenset[str], tuple[str, ...]]:
    """(IDs with a mounted rootfs, IDs with a network namespace mounted, other mounts)."""
    rootfs = re.compile(re.escape(str((d.data_root / "containers").resolve()))
                        + r"/([0-9a-f]{64})/bundle/rootfs$")
    netns = re.compile(re.escape(str((d.exec_root / "netns").resolve())) + r"/([0-9a-f]{64})$")
    ids: set[str] = set()
    namespaces: set[str] = set()
    others: list[str] = []
    for point in mount_points_under(d.root):
        found = rootfs.match(point)
        ns = netns.match(point)
        if found:
            ids.add(found.group(1))
        elif ns:
            namespaces.add(ns.group(1))
        else:
            others.append(point)
    return frozenset(ids), frozenset(namespaces), tuple(sorted(others))


def _entries(directory: Path, suffix: str = "") -> frozenset[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return frozenset()
    return frozenset(n.removesuffix(suffix) for n in names if n.endswith(suffix))


def cgroup_dirs(parent: str, base: Path = CGROUP_ROOT) -> frozenset[str]:
    """Container IDs that have a `<parent>/<id>` directory in some cgroup hierarchy."""
    found: set[str] = set()
    for top in (base, *(p for p in base.iterdir() if p.is_dir())):
        found.update(n for n in _entries(top / parent) if CONTAINER_ID.match(n))
    return frozenset(found)


def scan(d: Moord) -> KernelView:
    """One look at everything this daemon may have left in the kernel or on disk."""
    conmons, members = _processes(d)
    rootfs, namespaces, others = _mounts(d)
    state = d.data_root / "state"
    corrupt = sorted(str(p) for p in state.rglob("*.corrupt")) if state.is_dir() else []
    return KernelView(
        conmons={k: tuple(v) for k, v in conmons.items()},
        cgroup_pids={k: tuple(v) for k, v in members.items()},
        rootfs_mounts=rootfs,
        netns_mounts=namespaces,
        other_mounts=others,
        crun_dirs=_entries(crun_root(d)),
        container_dirs=_entries(d.data_root / "containers"),
        stored_ids=_entries(state / "containers", ".json"),
        cgroup_dirs=cgroup_dirs(d.cgroup_parent),
        corrupt_files=tuple(corrupt),
    )


def crun_state(d: Moord, container_id: str) -> dict[str, object] | None:
    """`crun --root=<exec_root>/crun state <id>`, or None when crun knows no such container."""
    result = subprocess.run(["crun", f"--root={crun_root(d)}", "state", container_id],
                            capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0:
        return None
    data = json.loads(result.stdout)
    return data if isinstance(data, dict) else None


def read_records(d: Moord) -> list[Record]:
    """Every record through the docker CLI: `docker ps -a`, then one `docker inspect`."""
    ids = d.docker("ps", "-aq", "--no-trunc", timeout=60).stdout.split()
    if not ids:
        return []
    # a record may go between the two calls (an --rm container's auto-removal): inspect
    # then exits 1 but still prints the others
    result = d.docker("inspect", *ids, check=False, timeout=60)
    items = json.loads(result.stdout or "[]")
    return [Record.from_inspect(item) for item in items]


def _check_live(r: Record, k: KernelView, crun: dict[str, object] | None) -> dict[str, str]:
    """A running or paused record: one conmon, a live pid in its cgroup, crun agreeing."""
    found: dict[str, str] = {}
    conmons = k.conmons.get(r.id, ())
    if len(conmons) != 1:
        found[f"conmons:{r.id}"] = f"record says {r.status}; live conmons for it: {list(conmons)}"
    if not is_alive(r.pid):
        found[f"pid:{r.id}"] = f"record says {r.status} with pid {r.pid}; that pid is not alive"
    elif r.pid not in k.cgroup_pids.get(r.id, ()):
        found[f"pid-cgroup:{r.id}"] = (f"record says {r.status} with pid {r.pid}; that pid is not "
                                       "in the container's cgroup")
    crun_status = None if crun is None else crun.get("status")
    if crun_status != r.status:
        said = crun_status or "no such container"
        found[f"crun:{r.id}"] = f"record says {r.status}; crun state says {said}"
    elif crun is not None and crun.get("pid") != r.pid:
        found[f"crun-pid:{r.id}"] = f"record has pid {r.pid}; crun state has pid {crun.get('pid')}"
    if r.id not in k.rootfs_mounts:
        found[f"unmounted:{r.id}"] = f"record says {r.status}; its rootfs is not mounted"
    return found


def _check_at_rest(r: Record, k: KernelView) -> dict[str, str]:
    """A created/exited/restarting record: nothing of it may live in the kernel."""
    found: dict[str, str] = {}
    if r.id in k.conmons:
        found[f"conmons:{r.id}"] = f"record says {r.status}; live conmons: {list(k.conmons[r.id])}"
    if r.id in k.cgroup_pids:
        found[f"procs:{r.id}"] = (f"record says {r.status}; processes in its cgroup: "
                                  f"{list(k.cgroup_pids[r.id])}")
    if r.id in k.rootfs_mounts:
        found[f"mounted:{r.id}"] = f"record says {r.status}; its rootfs is still a mount point"
    if r.id in k.netns_mounts:
        found[f"netns:{r.id}"] = f"record says {r.status}; its network namespace is still mounted"
    if r.id in k.crun_dirs:
        found[f"crun-dir:{r.id}"] = f"record says {r.status}; crun still has state for it"
    if r.id in k.cgroup_dirs:
        found[f"cgroup:{r.id}"] = f"record says {r.status}; its cgroup still exists"
    return found


def _check_leaks(records: dict[str, Record], k: KernelView) -> dict[str, str]:
    """Things in the kernel or on disk that belong to no record at all."""
    found: dict[str, str] = {}
    for cid, pids in k.conmons.items():
        if cid not in records:
            found[f"leaked-conmon:{cid}"] = f"conmon {list(pids)} for {cid}, which has no record"
    for cid, pids in k.cgroup_pids.items():
        if cid not in records:
            found[f"leaked-procs:{cid}"] = (f"processes {list(pids)} in the cgroup of {cid}, "
                                            "which has no record")
    for cid in k.rootfs_mounts - records.keys():
        found[f"leaked-mount:{cid}"] = f"rootfs of {cid} is mounted; it has no record"
    for cid in k.netns_mounts - records.keys():
        found[f"leaked-netns:{cid}"] = f"a network namespace of {cid} is mounted; it has no record"
    for cid in k.crun_dirs - records.keys():
        found[f"leaked-crun:{cid}"] = f"crun has state for {cid}; it has no record"
    for cid in k.cgroup_dirs - records.keys():
        found[f"leaked-cgroup:{cid}"] = f"a cgroup for {cid} exists; it has no record"
    for cid in k.container_dirs - records.keys():
        found[f"leaked-dir:{cid}"] = f"containers/{cid}/ exists; it has no record"
    for point in k.other_mounts:
        found[f"mount:{point}"] = f"unexpected mount under the daemon's root: {point}"
    return found


def _check_store(records: dict[str, Record], k: KernelView) -> dict[str, str]:
    """The store on disk holds exactly the records the API shows, none set aside as corrupt."""
    found: dict[str, str] = {}
    for path in k.corrupt_files:
        found[f"corrupt:{path}"] = f"a record was unreadable and set aside: {path}"
    for cid in records.keys() - k.stored_ids:
        found[f"unstored:{cid}"] = f"{cid} is listed by the API but has no record on disk"
    for cid in k.stored_ids - records.keys():
        found[f"unlisted:{cid}"] = f"a record for {cid} is on disk but the API does not list it"
    return found


def discrepancies(records: list[Record], k: KernelView,
                  crun_states: dict[str, dict[str, object] | None]) -> dict[str, str]:
    """Every way the records and the kernel disagree, keyed so a repeat can be recognised."""
    by_id = {r.id: r for r in records}
    found: dict[str, str] = {}
    for r in records:
        if r.status in LIVE:
            found.update(_check_live(r, k, crun_states.get(r.id)))
        elif r.status in AT_REST:
            found.update(_check_at_rest(r, k))
        elif r.status == "removing":
            # finished by recovery or by the rm in flight; only a persisting one is wrong
            found[f"removing:{r.id}"] = "record stays in 'removing'"
        else:
            found[f"status:{r.id}"] = f"unknown status {r.status!r}"
    found.update(_check_leaks(by_id, k))
    found.update(_check_store(by_id, k))
    return found


@attrs.define
class Snapshot:
    """One pass of the invariants: the records seen and what disagreed."""

    records: list[Record]
    found: dict[str, str]


def check_once(d: Moord) -> Snapshot:
    records = read_records(d)
    kernel = scan(d)
    crun_states = {r.id: crun_state(d, r.id) for r in records if r.status in LIVE}
    return Snapshot(records, discrepancies(records, kernel, crun_states))


def check_settled(d: Moord, known: frozenset[str] = frozenset(), *, patience: float = 2.0,
                  pause: float = 0.25) -> tuple[Snapshot, dict[str, str]]:
    """The invariants, allowing for transitions in flight.

    Containers keep exiting on their own (and restart policies keep starting them) while
    we look, so a record may lag the kernel by a moment. A disagreement only counts if it
    is there in every look for `patience` seconds; one that goes away was a transition.
    Disagreements in `known` (reported in an earlier round) are not waited on again.
    Returns the first snapshot and the persistent disagreements.
    """
    first = check_once(d)
    persistent = dict(first.found)
    deadline = time.monotonic() + patience
    while persistent.keys() - known and time.monotonic() < deadline:
        time.sleep(pause)
        again = check_once(d).found
        persistent = {key: again[key] for key in persistent if key in again}
    return first, persistent


def log_findings(log_path: Path, offset: int) -> tuple[int, list[str], int]:
    """(new offset, corrupt-record lines, traceback count) in the moord log since offset."""
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except FileNotFoundError:
        return offset, [], 0
    text = chunk.decode(errors="replace")
    corrupt = [line for line in text.splitlines() if CORRUPT_MARK in line]
    return offset + len(chunk), corrupt, text.count("Traceback (most recent call last)")
