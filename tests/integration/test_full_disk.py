"""A full disk under a real moord: a small ext4 on a loop device (or a small tmpfs) is its
data root.

A container printing numbered lines keeps printing while a filler file takes the last
block; conmon cannot write and drops the output. moord must say so everywhere (a marker
in `docker logs` where the lines are missing, a warning in its log, a `log_gap` event, a
counter), and writing must resume when the filler goes. A `docker commit` on the full
disk fails with ENOSPC's words, leaves the container running and nothing behind.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DOCKER_CLI, Moord, host_problems, inspect
from tests.support.smalldisk import fill, small_disk

pytestmark = pytest.mark.integration

WRITER = 'i=0; while true; do i=$((i+1)); echo "line $i"; usleep 10000; done'
MARKER = "[moorage] log gap:"
LINE = re.compile(r"^line (\d+)$")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=["ext4", "tmpfs"])
def disk_moord(request: pytest.FixtureRequest) -> Iterator[tuple[Moord, int]]:
    """A moord whose data root is a small disk: ext4 on a loop device (a failing write
    stops at a record's end there), or tmpfs (a failing write is cut short mid-record)."""
    problems = host_problems()
    if problems:
        pytest.fail("this host cannot run the integration tests:\n  " + "\n  ".join(problems),
                    pytrace=False)
    base = Path(tempfile.mkdtemp(prefix="fd-", dir="/tmp"))
    daemon = Moord(base / "d")
    port = _free_port()
    try:
        with small_disk(daemon.data_root, base / "disk.img", size_mib=96, kind=request.param):
            try:
                daemon.start("--metrics-addr", f"127.0.0.1:{port}")
                daemon.import_busybox()
                yield daemon, port
            finally:
                for leftover in daemon.data_root.glob("filler*"):
                    leftover.unlink(missing_ok=True)
                daemon.cleanup()
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def _numbers(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for m in map(LINE.match, lines) if m]


def _wait_for(what: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _last_number(d: Moord, cid: str) -> int:
    numbers = _numbers(d.docker("logs", "--tail", "5", cid).stdout.splitlines())
    return numbers[-1] if numbers else 0


def _check_gaps(lines: list[str]) -> int:
    """Every number printed is there or inside a gap that a marker reports; returns the
    number of lines missing. Lines come in order, once each."""
    missing = 0
    previous, marker_since = 0, False
    for line in lines:
        if line.startswith(MARKER):
            marker_since = True
            continue
        m = LINE.match(line)
        assert m, f"a line that is neither output nor a marker: {line!r}"
        n = int(m.group(1))
        assert n > previous, f"line {n} after line {previous}: repeated or out of order"
        if n != previous + 1:
            assert marker_since, f"lines {previous + 1}..{n - 1} are missing and no marker says so"
            missing += n - previous - 1
        previous, marker_since = n, False
    return missing


def test_output_lost_to_a_full_disk_is_reported_and_writing_resumes(
        disk_moord: tuple[Moord, int]) -> None:
    d, port = disk_moord
    started = time.time()
    cid = d.docker("run", "-d", "busybox", "sh", "-c", WRITER).stdout.strip()
    follower = subprocess.Popen([DOCKER_CLI, "logs", "-f", cid], env=d.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for("200 lines", lambda: _last_number(d, cid) >= 200)
        filler = fill(d.data_root)
        time.sleep(4)
        stuck_at = _last_number(d, cid)
        filler.unlink()
        _wait_for("lines after the disk had room again",
                  lambda: _last_number(d, cid) >= stuck_at + 300)
        _wait_for("the gap's warning in moord's log",
                  lambda: "output written between" in d.log_tail(2000))
        d.docker("stop", "-t", "1", cid)
    finally:
        try:
            out, _ = follower.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            follower.kill()
            out, _ = follower.communicate()

    shown = d.docker("logs", cid)
    lines = shown.stdout.splitlines()
    markers = [ln for ln in shown.stderr.splitlines() if ln.startswith(MARKER)]
    assert len(markers) == 1, shown.stderr[-2000:]
    assert "was lost: the disk holding this log was full" in markers[0]
    # stdout and stderr together, in the order moord sends them (one stream, tty-free)
    both = subprocess.run([DOCKER_CLI, "logs", cid], env=d.env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=True).stdout.splitlines()
    missing = _check_gaps(both)
    assert missing > 0, "the disk filled but no output went missing: the test proved nothing"
    numbers = _numbers(lines)
    assert numbers[-1] >= stuck_at + 300

    # the follower, started before the disk filled, saw the same
    assert _check_gaps(out.splitlines()) == missing
    assert sum(ln.startswith(MARKER) for ln in out.splitlines()) == 1

    events = d.docker("events", "--since", str(int(started)), "--until", str(int(time.time()) + 1),
                      "--filter", f"container={cid}", "--filter", "event=log_gap",
                      "--format", "{{json .}}").stdout.splitlines()
    assert len(events) == 1, events
    attributes = json.loads(events[0])["Actor"]["Attributes"]
    assert int(attributes["until"]) > int(attributes["since"]) > 0

    assert "the disk holding its log is full" in d.log_tail(4000)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        metrics = response.read().decode()
    assert f'moorage_log_gaps_total{{container="{cid[:12]}"}} 1' in metrics
    d.docker("rm", "-f", cid)


def test_commit_on_a_full_disk_fails_clearly_and_leaves_nothing(
        disk_moord: tuple[Moord, int]) -> None:
    d, _ = disk_moord
    cid = d.docker("run", "-d", "busybox", "sh", "-c",
                   "dd if=/dev/zero of=/big bs=1M count=8 && echo ready && sleep 300").stdout.strip()
    name = f"full-{secrets.token_hex(3)}"
    try:
        _wait_for("the container to be ready", lambda: "ready" in d.docker("logs", cid).stdout)
        images_before = d.docker("images", "-aq", "--no-trunc").stdout.split()
        tree_before = _image_store(d)
        filler = fill(d.data_root)
        try:
            # paused first (the pause cannot be recorded), then not paused (the layer
            # cannot be written)
            results = [d.docker("commit", *flags, cid, f"{name}:v1", check=False)
                       for flags in ((), ("--pause=false",))]
            # room for the layer's tarball (8 MiB) but not for the layer unpacked from it
            with open(filler, "r+b") as f:
                f.truncate(filler.stat().st_size - 12 * 1024 * 1024)
            results.append(d.docker("commit", cid, f"{name}:v1", check=False))
            state = inspect(d, cid)["State"]
        finally:
            filler.unlink()
        for result in results:
            assert result.returncode != 0, "a commit on a full disk succeeded"
            assert "no space left on device" in result.stderr, result.stderr
        assert state["Running"] is True, state  # type: ignore[index]
        assert state["Paused"] is False, state  # type: ignore[index]
        assert d.docker("images", "-aq", "--no-trunc").stdout.split() == images_before
        assert _image_store(d) == tree_before
        # and with room again it works
        d.docker("commit", cid, f"{name}:v1")
    finally:
        d.docker("rm", "-f", cid, check=False)
        d.docker("rmi", f"{name}:v1", check=False)


def _image_store(d: Moord) -> list[str]:
    """Every file under the data root that belongs to images and layers (no containers')."""
    root = d.data_root
    found = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if (rel.parts and rel.parts[0] in ("containers", "lost+found")) or "filler" in rel.name:
            continue
        found.append(str(rel))
    return found
