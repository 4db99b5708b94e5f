"""Issue 4, shown for real: logs bounded, lossless, followable, fast.

Every test runs real containers under a real moord (crun, conmon) and reads their output
back with the stock docker CLI or the Docker SDK. The content is deterministic, so what
must come back is computed here and compared byte for byte. Nothing asserts on a time;
the cost of `--tail` is measured in bytes moord read (`/proc/<moord>/io`).

Containers that must not start writing before the test is ready wait for SIGUSR1 (their
shell traps it; they print `ready` once the trap is set).
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.support.daemon import DOCKER_CLI, Moord

MILLION = 1_000_000
PAD = "x" * 56  # "line 0000000 " + 56 x + "\n" = 70 bytes a line, 70 MB a million
ONE_MIB = 1024 * 1024
GATE = "trap 'go=1' USR1; echo ready; while [ -z \"$go\" ]; do usleep 10000; done; "
TIMESTAMPED = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (.*)")


# --- helpers ---------------------------------------------------------------------------------


def numbered_lines(count: int) -> str:
    """A shell command printing `line 0000000 xxx…` (70 bytes) `count` times, fast (awk)."""
    return ("awk 'BEGIN { for (i = 0; i < " + str(count) + "; i++) printf \"line %07d "
            + PAD + "\\n\", i }'")


def expected_lines(count: int, start: int = 0) -> bytes:
    return b"".join(b"line %07d %s\n" % (i, PAD.encode()) for i in range(start, count))


def docker_bytes(d: Moord, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    """The docker CLI with its output as bytes (`Moord.docker` decodes; 70 MB is better raw)."""
    result = subprocess.run([DOCKER_CLI, *args], env=d.env, capture_output=True, timeout=timeout,
                            check=False)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr.decode()[-2000:]}"
    return result


def follower(d: Moord, *args: str) -> subprocess.Popen[bytes]:
    """`docker logs -f …` running in the background, its stdout a pipe."""
    return subprocess.Popen([DOCKER_CLI, "logs", "-f", *args], env=d.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes], timeout: float = 300) -> tuple[bytes, bytes]:
    """The rest of a background CLI's output, once it has ended (killed after `timeout`).

    Read through the pipes' file objects: `communicate()` would skip what an earlier
    `readline()` already buffered.
    """
    assert proc.stdout is not None
    assert proc.stderr is not None
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        out = proc.stdout.read()
        err = proc.stderr.read()
        proc.wait()
    finally:
        watchdog.cancel()
    return out, err


def wait_exited(d: Moord, cid: str, timeout: float = 120) -> dict[str, Any]:
    """Inspect's State once the container has exited for good (no restart pending)."""
    deadline = time.monotonic() + timeout
    while True:
        state: dict[str, Any] = json.loads(d.docker("inspect", cid).stdout)[0]["State"]
        if state["Status"] == "exited":
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{cid[:12]} still {state['Status']} after {timeout} s")
        time.sleep(0.1)


def container_dir(d: Moord, cid: str) -> Path:
    return d.data_root / "containers" / cid


def rchar(pid: int) -> int:
    """Bytes the process has passed to read(2) and friends, over all its threads."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/io has no rchar")


def moord_pid(d: Moord) -> int:
    assert d.proc is not None
    assert d.proc.poll() is None
    return d.proc.pid


@pytest.fixture
def cleanup(moord: Moord) -> Iterator[list[str]]:
    """Containers to remove after the test (names or ids)."""
    made: list[str] = []
    yield made
    if made:
        moord.docker("rm", "-f", *made, check=False, timeout=120)


@pytest.fixture(scope="module")
def million(moord: Moord) -> Iterator[str]:
    """A stopped container that wrote 1,000,000 lines (70 MB), none rotated away."""
    cid = moord.docker("run", "-d", "--log-opt", "max-size=200m", "busybox", "sh", "-c",
                       numbered_lines(MILLION)).stdout.strip()
    try:
        state = wait_exited(moord, cid)
        assert state["ExitCode"] == 0
        yield cid
    finally:
        moord.docker("rm", "-f", cid, check=False)


# --- 1. a million lines --------------------------------------------------------------------


def test_a_million_lines_come_back_complete_and_in_order(moord: Moord, million: str) -> None:
    expected = expected_lines(MILLION)
    out = docker_bytes(moord, "logs", million)
    assert out.stderr == b""
    assert out.stdout.count(b"\n") == MILLION
    assert hashlib.sha256(out.stdout).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert out.stdout == expected
    # it really was one file: nothing rotated at max-size=200m
    assert not (container_dir(moord, million) / "ctr.log.1").exists()


# --- 2. the same while rotating, followed ---------------------------------------------------


def test_follow_across_many_rotations_loses_and_repeats_nothing(moord: Moord,
                                                                 cleanup: list[str]) -> None:
    cid = moord.docker("run", "-d", "--log-opt", "max-size=2m", "--log-opt", "max-file=100",
                       "busybox", "sh", "-c", GATE + numbered_lines(MILLION)).stdout.strip()
    cleanup.append(cid)
    follow = follower(moord, cid)
    assert follow.stdout is not None
    assert follow.stdout.readline() == b"ready\n"  # the follower is following: go
    moord.docker("kill", "-s", "USR1", cid)
    rest, err = finish(follow)
    assert follow.returncode == 0, err.decode()
    expected = expected_lines(MILLION)
    assert rest.count(b"\n") == MILLION
    assert rest == expected, "the follower lost, repeated or reordered lines"

    state = wait_exited(moord, cid)
    assert state["ExitCode"] == 0
    again = docker_bytes(moord, "logs", cid).stdout
    assert again == b"ready\n" + expected

    files = sorted(p.name for p in container_dir(moord, cid).glob("ctr.log*"))
    rotated = [n for n in files if n != "ctr.log"]
    # ~115 MB of k8s-file in 2 MiB files: dozens of rotations, all kept (max-file=100)
    assert len(rotated) >= 10, files
    assert set(rotated) == {f"ctr.log.{i}" for i in range(1, len(rotated) + 1)}


# --- 3. a 1 MiB line --------------------------------------------------------------------------


def test_a_one_mib_line_comes_back_whole(moord: Moord, cleanup: list[str], docker_client: Any) -> None:
    # 131072 eight-byte numbers: a chunk out of place would show, unlike a repeated pattern
    script = ("awk 'BEGIN { print \"before\"; for (i = 0; i < 131072; i++) printf \"%07d,\", i; "
              "printf \"\\n\"; print \"after\" }'")
    cid = moord.docker("run", "-d", "busybox", "sh", "-c", script).stdout.strip()
    cleanup.append(cid)
    wait_exited(moord, cid)
    big = b"".join(b"%07d," % i for i in range(131072)) + b"\n"
    assert len(big) == ONE_MIB + 1
    assert docker_bytes(moord, "logs", cid).stdout == b"before\n" + big + b"after\n"
    assert docker_bytes(moord, "logs", "--tail", "2", cid).stdout == big + b"after\n"
    assert docker_client.containers.get(cid).logs() == b"before\n" + big + b"after\n"


# --- 4. stdout and stderr ---------------------------------------------------------------------


def test_stdout_and_stderr_stay_apart(moord: Moord, cleanup: list[str], docker_client: Any) -> None:
    script = "for i in 1 2 3; do echo out$i; echo err$i >&2; done"
    cid = moord.docker("run", "-d", "busybox", "sh", "-c", script).stdout.strip()
    cleanup.append(cid)
    wait_exited(moord, cid)
    out, err = "out1\nout2\nout3\n", "err1\nerr2\nerr3\n"
    cli = moord.docker("logs", cid)
    assert (cli.stdout, cli.stderr) == (out, err)
    container = docker_client.containers.get(cid)
    assert container.logs(stdout=True, stderr=False) == out.encode()
    assert container.logs(stdout=False, stderr=True) == err.encode()


# --- 5. --tail reads the end only -------------------------------------------------------------


def test_tail_reads_the_end_not_the_whole_file(moord: Moord, million: str) -> None:
    size = (container_dir(moord, million) / "ctr.log").stat().st_size
    pid = moord_pid(moord)

    before = rchar(pid)
    tail = docker_bytes(moord, "logs", "--tail", "10", million).stdout
    tail_read = rchar(pid) - before
    assert tail == expected_lines(MILLION, start=MILLION - 10)

    before = rchar(pid)
    docker_bytes(moord, "logs", million)
    full_read = rchar(pid) - before
    print(f"\n--tail 10 on a {size / 1e6:.0f} MB log: moord read {tail_read} bytes; "
          f"a full read: {full_read} bytes")
    assert full_read >= size  # the measurement sees moord's file reads...
    assert tail_read < 1024 * 1024  # ...and the tail read a sliver of the 115 MB


# --- 6. follow across a moord restart ---------------------------------------------------------


def _stamped(raw: bytes) -> list[tuple[str, str]]:
    """`docker logs --timestamps` output as (timestamp, text) pairs, whole lines only."""
    pairs = []
    for line in raw.decode().splitlines():
        m = TIMESTAMPED.fullmatch(line)
        assert m, f"not a timestamped line: {line!r}"
        pairs.append((m.group(1), m.group(2)))
    return pairs


def _read_until(proc: subprocess.Popen[bytes], wanted: Callable[[list[tuple[str, str]]], bool],
                seen: list[tuple[str, str]]) -> None:
    """Read a follower's lines into `seen` until `wanted(seen)`; the follower must not end."""
    stream: IO[bytes] | None = proc.stdout
    assert stream is not None
    while not wanted(seen):
        line = stream.readline()
        assert line, f"the follower ended early: {proc.stderr.read() if proc.stderr else ''!r}"
        seen.extend(_stamped(line))


def _ticks(pairs: list[tuple[str, str]]) -> int:
    return sum(1 for _, text in pairs if text.startswith("tick "))


def _grows(path: Path, timeout: float = 30) -> None:
    """Wait until the file at `path` gets bigger: the container is writing."""
    start = path.stat().st_size
    deadline = time.monotonic() + timeout
    while path.stat().st_size <= start:
        assert time.monotonic() < deadline, f"{path} did not grow while moord was down"
        time.sleep(0.05)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_follow_resumes_after_a_moord_restart_missing_nothing(
        fresh_moord: Callable[[], Moord], how: signal.Signals) -> None:
    d = fresh_moord()
    d.start()
    d.import_busybox()
    script = ("trap 'go=1' USR1; i=0; while [ -z \"$go\" ]; do echo \"tick $i\"; i=$((i+1)); "
              "usleep 5000; done; echo end")
    cid = d.docker("run", "-d", "busybox", "sh", "-c", script).stdout.strip()
    log_path = container_dir(d, cid) / "ctr.log"

    first = follower(d, "--timestamps", cid)
    seen: list[tuple[str, str]] = []
    _read_until(first, lambda s: _ticks(s) >= 50, seen)
    d.stop(how)
    rest, _ = finish(first, timeout=60)  # moord is gone: the stream ends
    seen += _stamped(rest)
    _grows(log_path)  # the container keeps writing while moord is down
    down_from = seen[-1][0]

    d.start()
    last_stamp = seen[-1][0]
    second = follower(d, "--timestamps", "--since", last_stamp, cid)
    resumed: list[tuple[str, str]] = []
    _read_until(second, lambda s: _ticks(s) >= 50 and s[-1][0] > down_from, resumed)
    d.docker("kill", "-s", "USR1", cid)
    rest, err = finish(second, timeout=60)
    assert second.returncode == 0, err.decode()
    resumed += _stamped(rest)

    # `since` is inclusive: what the first stream already showed at that instant comes again
    boundary = {pair for pair in seen if pair[0] == last_stamp}
    assert resumed[0][0] == last_stamp
    union = seen + [pair for pair in resumed if pair not in boundary]
    texts = [text for _, text in union]
    assert texts[-1] == "end"
    ticks = texts[:-1]
    assert ticks == [f"tick {i}" for i in range(len(ticks))], "a line was lost or repeated"
    assert len(ticks) >= 100
    # and it is what the file has: the same lines, the same stamps
    everything = _stamped(docker_bytes(d, "logs", "--timestamps", cid).stdout)
    assert everything == union


# --- 7. a restart policy keeps appending ------------------------------------------------------


@pytest.mark.cgroup_v2
def test_runs_restarted_by_policy_append_to_one_log(moord: Moord, cleanup: list[str]) -> None:
    script = ("n=$(cat /runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /runs; "
              "echo \"run $n begins\"; echo \"run $n ends\" >&2; exit 1")
    cid = moord.docker("run", "-d", "--restart", "on-failure:2", "busybox", "sh", "-c",
                       script).stdout.strip()
    cleanup.append(cid)
    deadline = time.monotonic() + 60
    while True:
        state = wait_exited(moord, cid)
        inspect = json.loads(moord.docker("inspect", cid).stdout)[0]
        if inspect["RestartCount"] == 2 and state["Status"] == "exited":
            break
        assert time.monotonic() < deadline, inspect["State"]
        time.sleep(0.1)
    assert state["ExitCode"] == 1
    logs = moord.docker("logs", cid)
    assert logs.stdout == "".join(f"run {n} begins\n" for n in (1, 2, 3))
    assert logs.stderr == "".join(f"run {n} ends\n" for n in (1, 2, 3))
    stamped = docker_bytes(moord, "logs", "--timestamps", cid)
    both = _stamped(stamped.stdout) + _stamped(stamped.stderr)
    runs = [int(text.split()[1]) for _, text in sorted(both)]
    assert runs == [1, 1, 2, 2, 3, 3]  # one log, the runs one after the other


# --- 8. drivers and options as Docker has them ------------------------------------------------


def test_log_driver_none_streams_through_attach_but_cannot_be_read(
        moord: Moord, cleanup: list[str]) -> None:
    cleanup.append("nolog")
    run = moord.docker("run", "--name", "nolog", "--log-driver", "none", "busybox", "sh", "-c",
                       "echo to attach; echo also >&2")
    assert (run.stdout, run.stderr) == ("to attach\n", "also\n")
    refused = moord.docker("logs", "nolog", check=False)
    assert refused.returncode != 0
    assert ("Error response from daemon: configured logging driver does not support reading"
            in refused.stderr)
    config = json.loads(moord.docker("inspect", "nolog").stdout)[0]["HostConfig"]["LogConfig"]
    assert config == {"Type": "none", "Config": {}}
    cid = json.loads(moord.docker("inspect", "nolog").stdout)[0]["Id"]
    assert not (container_dir(moord, cid) / "ctr.log").exists()  # nothing kept on disk


def test_json_file_options_are_accepted_and_shown(moord: Moord, cleanup: list[str]) -> None:
    cleanup.append("jf")
    moord.docker("create", "--name", "jf", "--log-driver", "json-file", "--log-opt", "max-size=10m",
                 "--log-opt", "max-file=3", "busybox", "true")
    config = json.loads(moord.docker("inspect", "jf").stdout)[0]["HostConfig"]["LogConfig"]
    assert config == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}


@pytest.mark.parametrize(("args", "message"), [
    (["--log-opt", "max-file=0"], "max-file cannot be less than 1"),
    (["--log-opt", "bogus=1"], "unknown log opt 'bogus' for json-file log driver"),
    (["--log-opt", "max-size=lots"], "invalid max-size: lots"),
    (["--log-driver", "x"], "logger: no log driver named 'x' is registered"),
])
def test_bad_log_configs_are_refused_with_dockers_words(
        moord: Moord, docker_client: Any, args: list[str], message: str) -> None:
    refused = moord.docker("create", *args, "busybox", "true", check=False)
    assert refused.returncode != 0
    assert f"Error response from daemon: {message}" in refused.stderr
    import docker

    driver = args[1] if args[0] == "--log-driver" else "json-file"
    opts = dict([args[1].split("=", 1)]) if args[0] == "--log-opt" else {}
    with pytest.raises(docker.errors.APIError) as caught:
        docker_client.containers.create("busybox", "true",
                                        log_config={"Type": driver, "Config": opts})
    assert caught.value.status_code == 400
    assert message in str(caught.value.explanation)


def test_info_shows_the_logging_driver_and_the_log_plugins(moord: Moord) -> None:
    info = json.loads(moord.docker("info", "--format", "{{json .}}").stdout)
    assert info["LoggingDriver"] == "json-file"
    assert {"json-file", "local", "k8s-file", "none"} <= set(info["Plugins"]["Log"])


def _with_log_defaults(make: Callable[[], Moord]) -> Moord:
    """A fresh moord whose daemon-wide log options are `max-size=1m`, `max-file=2`."""
    d = make()
    d.start("--log-max-size", "1m", "--log-max-file", "2")
    d.import_busybox()
    return d


def test_daemon_log_defaults_bound_a_containers_log(fresh_moord: Callable[[], Moord]) -> None:
    d = _with_log_defaults(fresh_moord)
    cid = d.docker("run", "-d", "busybox", "sh", "-c", numbered_lines(50_000)).stdout.strip()
    wait_exited(d, cid)
    # ~6 MB written, at most two files kept (the live one may have been rotated away
    # just as the container exited: conmon was no longer there to open a new one)
    files = {p.name for p in container_dir(d, cid).glob("ctr.log*")}
    assert "ctr.log.1" in files
    assert files <= {"ctr.log", "ctr.log.1"}
    tail = docker_bytes(d, "logs", "--tail", "1", cid).stdout
    assert tail == expected_lines(50_000, start=49_999)


def test_daemon_log_defaults_show_in_inspect(fresh_moord: Callable[[], Moord]) -> None:
    d = _with_log_defaults(fresh_moord)
    d.docker("create", "--name", "defaults", "busybox", "true")
    config = json.loads(d.docker("inspect", "defaults").stdout)[0]["HostConfig"]["LogConfig"]
    assert config == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
