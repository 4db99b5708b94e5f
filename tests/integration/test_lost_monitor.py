"""A container's conmon SIGKILLed under it: the container is killed too (nothing runs
unsupervised), its exit is 137 with one `die` event, and the restart policy acts as
usual, as dockerd does when a containerd shim dies (containerd's `shim delete` kills
the task and reports 128 + SIGKILL; dockerd sends `die` and, for a policy restart,
`start`: no `kill`, `stop` or `restart`)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable

import pytest

from tests.support import crashcheck
from tests.support.daemon import Moord, inspect

SETTLE_S = 60.0


def _state(d: Moord, ref: str) -> dict[str, object]:
    state = inspect(d, ref)["State"]
    assert isinstance(state, dict)
    return state


def _until(what: str, check: Callable[[], bool], d: Moord) -> None:
    deadline = time.monotonic() + SETTLE_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {SETTLE_S:.0f} s\n{d.log_tail(40)}")
        time.sleep(0.1)


def _events(d: Moord, cid: str, since: float) -> list[tuple[str, str | None, str | None]]:
    """The container's events from `since` to now: (action, exitCode, reason)."""
    out = d.docker("events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
                   "--filter", f"container={cid}", "--format", "{{json .}}").stdout
    found = []
    for line in out.splitlines():
        event = json.loads(line)
        attributes = event["Actor"]["Attributes"]
        found.append((event["Action"], attributes.get("exitCode"), attributes.get("reason")))
    return found


def _conmon_of(d: Moord, cid: str) -> int:
    """The conmon moord runs for `cid` (its argv says `-c <id>`), the parent of the
    container's process."""
    conmons = crashcheck.scan(d).conmons.get(cid, ())
    assert len(conmons) == 1, (cid, conmons)
    return conmons[0]


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("PPid:"))


@pytest.mark.parametrize("policy", ["no", "always"])
def test_a_killed_conmon_ends_its_container_with_137_and_one_die(
        fresh_moord: Callable[[], Moord], policy: str) -> None:
    d = fresh_moord()
    d.start()
    d.import_busybox()
    since = time.time() - 0.5
    cid = d.docker("run", "-d", "--restart", policy, "busybox", "sleep", "600").stdout.strip()
    pid = _state(d, cid)["Pid"]
    assert isinstance(pid, int)
    assert pid > 0
    conmon = _conmon_of(d, cid)
    assert _parent(pid) == conmon

    os.kill(conmon, signal.SIGKILL)

    if policy == "no":
        assert d.docker("wait", cid).stdout.strip() == "137"
        state = _state(d, cid)
        assert (state["Status"], state["ExitCode"], state["StopReason"]) == (
            "exited", 137, "monitor-lost")
    else:
        _until("the restart", lambda: inspect(d, cid)["RestartCount"] == 1
               and _state(d, cid)["Status"] == "running", d)
        state = _state(d, cid)
        assert state["Pid"] != pid
        assert crashcheck.is_alive(int(str(state["Pid"])))
        assert _parent(int(str(state["Pid"]))) == _conmon_of(d, cid)
    # the old process did not outlive its conmon
    assert not crashcheck.is_alive(pid)
    assert not crashcheck.is_alive(conmon)

    expected = [("create", None, None), ("start", None, None), ("die", "137", "monitor-lost")]
    if policy == "always":
        expected.append(("start", None, None))
    _until("the events", lambda: len(_events(d, cid, since)) >= len(expected), d)
    time.sleep(1.0)  # and nothing after them (a `restart`, a second `die`)
    assert _events(d, cid, since) == expected

    k = crashcheck.scan(d)
    if policy == "no":
        assert (k.conmons, k.cgroup_pids) == ({}, {})
        assert not (k.rootfs_mounts | k.netns_mounts | k.crun_dirs | k.cgroup_dirs), k
    else:
        assert set(k.conmons) == {cid}
        assert len(k.conmons[cid]) == 1
        assert k.cgroup_pids == {cid: (state["Pid"],)}
        assert k.rootfs_mounts == k.netns_mounts == k.crun_dirs == frozenset({cid})
    assert k.other_mounts == ()
    d.docker("rm", "-f", cid)
    k = crashcheck.scan(d)
    assert (k.conmons, k.cgroup_pids, k.other_mounts) == ({}, {}, ())
    assert not (k.rootfs_mounts | k.netns_mounts | k.crun_dirs | k.cgroup_dirs
                | k.container_dirs), k
