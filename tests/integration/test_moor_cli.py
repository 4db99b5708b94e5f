"""`moor` against a real moord: the commands a Docker user types, end to end.

Uses the session `moord` fixture (tests/conftest.py), which has busybox:latest
imported. Every container gets a unique name and is removed afterwards, so these
tests share the daemon with the others.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MOOR_SCRIPT = REPO / ".venv" / "bin" / "moor"


def moor_argv() -> list[str]:
    """The installed `moor` script if there is one, else the module (same code)."""
    if MOOR_SCRIPT.exists():
        return [str(MOOR_SCRIPT)]
    return [sys.executable, "-m", "engine.cli"]


def moor(daemon: Any, *args: str, input: bytes | None = None, timeout: float = 60,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*moor_argv(), *args], env=env or daemon.env, cwd=REPO, capture_output=True,
        input=input.decode() if input is not None else None, text=True, timeout=timeout,
        check=False)
    return result


def ok(daemon: Any, *args: str, **kwargs: Any) -> str:
    result = moor(daemon, *args, **kwargs)
    assert result.returncode == 0, (
        f"moor {' '.join(args)} failed ({result.returncode}):\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}")
    return result.stdout


@pytest.fixture
def names(moord: Any) -> Iterator[list[str]]:
    """Unique container names for a test; whatever they name is removed afterwards."""
    made: list[str] = []
    yield made
    if made:
        moor(moord, "rm", "-f", *made)


def unique(names: list[str], stem: str) -> str:
    name = f"moor-{stem}-{uuid.uuid4().hex[:8]}"
    names.append(name)
    return name


def test_run_prints_and_removes(moord: Any) -> None:
    result = moor(moord, "run", "--rm", "busybox", "echo", "hello")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello\n", "")


def test_run_separates_streams_and_exit_status(moord: Any) -> None:
    result = moor(moord, "run", "--rm", "busybox", "sh", "-c",
                  "echo out; echo err >&2; exit 3")
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_run_unknown_command_is_127(moord: Any) -> None:
    result = moor(moord, "run", "--rm", "busybox", "no-such-command-here")
    assert result.returncode == 127, result.stderr


def test_run_interactive_stdin(moord: Any) -> None:
    result = moor(moord, "run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done",
                  input=b"line 1\nline 2\n")
    assert (result.returncode, result.stdout) == (0, "line 1\nline 2\ndone\n"), result.stderr


def test_run_env_flags(moord: Any, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=file value\n# comment\n")
    env = dict(moord.env, FROM_CLIENT="client value")
    out = ok(moord, "run", "--rm", "-e", "FROM_CLIENT", "-e", "EXPLICIT=x", "--env-file",
             str(env_file), "-w", "/tmp", "busybox", "sh", "-c",
             'echo "$FROM_CLIENT|$EXPLICIT|$FROM_FILE|$(pwd)"', env=env)
    assert out == "client value|x|file value|/tmp\n"


def test_detached_lifecycle(moord: Any, names: list[str]) -> None:
    name = unique(names, "life")
    cid = ok(moord, "run", "-d", "--name", name, "busybox", "sh", "-c",
             "echo started; exec sleep 300").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)

    assert cid[:12] in ok(moord, "ps", "-q").split()
    rows = [json.loads(line) for line in ok(moord, "ps", "--format", "json").splitlines()]
    (row,) = [r for r in rows if r["Names"] == name]
    assert row["ID"] == cid[:12]
    assert row["State"] == "running"
    assert row["Status"].startswith("Up")
    table = ok(moord, "ps", "-a", "--filter", f"name={name}")
    header, *lines = table.splitlines()
    assert header.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                              "PORTS", "NAMES"]
    assert len(lines) == 1
    assert lines[0].startswith(cid[:12])
    assert lines[0].endswith(name)
    assert '"sh -c ' in lines[0]  # the command, quoted and cut at 20 characters

    deadline = time.monotonic() + 10
    while "started" not in ok(moord, "logs", name) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ok(moord, "logs", name) == "started\n"
    stamped = ok(moord, "logs", "-t", name)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z started\n", stamped)

    assert ok(moord, "stop", "-t", "1", name) == f"{name}\n"
    state = json.loads(ok(moord, "inspect", name))[0]["State"]
    assert state["Status"] == "exited"
    assert state["ExitCode"] in (137, 143)
    assert ok(moord, "inspect", "-f", "{{.State.Status}}", name) == "exited\n"
    assert ok(moord, "ps", "-a", "--format", "{{.Names}} {{.State}}",
              "--filter", f"name={name}") == f"{name} exited\n"
    assert name not in ok(moord, "ps", "--format", "{{.Names}}").split()

    assert ok(moord, "rm", name) == f"{name}\n"
    names.remove(name)
    assert cid[:12] not in ok(moord, "ps", "-aq").split()


def test_ps_matches_docker_cli(moord: Any, names: list[str]) -> None:
    name = unique(names, "same")
    ok(moord, "run", "-d", "--name", name, "-l", "a=b", "busybox", "sleep", "300")
    fmt = "{{.ID}} {{.Image}} {{.Command}} {{.Names}} {{.Labels}} {{.State}}"
    ours = ok(moord, "ps", "--format", fmt, "--filter", f"name={name}")
    docker = moord.docker("ps", "--format", fmt, "--filter", f"name={name}").stdout
    assert ours == docker
    # a table without CREATED: "59 seconds ago" may tick over between the two commands
    table = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}"
    assert ok(moord, "images", "--format", table, "busybox") == moord.docker(
        "images", "--format", table, "busybox").stdout


def test_logs_follow_ends_with_the_container(moord: Any, names: list[str]) -> None:
    name = unique(names, "follow")
    # stdout and stderr are separate pipes: without the pause before c, b and c could
    # reach the log in either order and the tail below would not be deterministic.
    ok(moord, "run", "-d", "--name", name, "busybox", "sh", "-c",
       "echo a; sleep 1; echo b >&2; sleep 0.3; echo c")
    result = moor(moord, "logs", "-f", name, timeout=30)
    assert result.returncode == 0
    assert result.stdout == "a\nc\n"
    assert result.stderr == "b\n"
    assert ok(moord, "logs", "--tail", "1", name) == "c\n"


def test_wait_prints_exit_code(moord: Any, names: list[str]) -> None:
    name = unique(names, "wait")
    ok(moord, "run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 0.5; exit 5")
    assert ok(moord, "wait", name) == "5\n"


def test_create_start_attach_restart_rename(moord: Any, names: list[str]) -> None:
    name = unique(names, "create")
    cid = ok(moord, "create", "--name", name, "busybox", "sh", "-c", "echo hi; exit 2").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    result = moor(moord, "start", "-a", name)
    assert (result.returncode, result.stdout) == (2, "hi\n"), result.stderr
    new_name = unique(names, "renamed")
    ok(moord, "rename", name, new_name)
    assert ok(moord, "inspect", "-f", "{{.Name}}", cid) == f"/{new_name}\n"
    assert ok(moord, "restart", "-t", "1", new_name) == f"{new_name}\n"


def test_import_tarball(moord: Any, tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        data = b"imported by moor\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tag = f"moor-import-{uuid.uuid4().hex[:8]}"
    out = ok(moord, "import", "-c", 'CMD ["/hello.txt"]', "-m", "from a test", str(tarball),
             f"{tag}:v1")
    image_id = out.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    listing = ok(moord, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert f"{tag}:v1 {image_id[7:19]}" in listing.splitlines()
    inspected = json.loads(ok(moord, "image", "inspect", f"{tag}:v1"))[0]
    assert inspected["Id"] == image_id
    assert inspected["Config"]["Cmd"] == ["/hello.txt"]
    ok(moord, "tag", f"{tag}:v1", f"{tag}:v2")
    assert f"{tag}:v2" in ok(moord, "images", "--format", "{{.Repository}}:{{.Tag}}")
    removed = ok(moord, "rmi", f"{tag}:v1", f"{tag}:v2")
    assert f"Untagged: {tag}:v1" in removed


def test_import_from_stdin(moord: Any) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("empty"), io.BytesIO(b""))
    tag = f"moor-stdin-{uuid.uuid4().hex[:8]}"
    result = subprocess.run([*moor_argv(), "import", "-", tag], env=moord.env, cwd=REPO,
                            input=buffer.getvalue(), capture_output=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith("sha256:")
    ok(moord, "rmi", tag)


def test_errors_are_one_clear_line(moord: Any, names: list[str]) -> None:
    missing = f"moor-missing-{uuid.uuid4().hex[:8]}"
    result = moor(moord, "stop", missing)
    assert result.returncode == 1
    assert result.stderr == f"Error response from daemon: No such container: {missing}\n"
    result = moor(moord, "inspect", missing)
    assert (result.returncode, result.stdout) == (1, "[]\n")
    assert result.stderr == f"Error: No such object: {missing}\n"

    name = unique(names, "dup")
    ok(moord, "run", "-d", "--name", name, "busybox", "sleep", "300")
    result = moor(moord, "run", "-d", "--name", name, "busybox", "sleep", "300")
    assert result.returncode == 125
    assert result.stderr.startswith("Error response from daemon: ")
    assert "already in use" in result.stderr
    assert len(result.stderr.splitlines()) == 1

    result = moor(moord, "run", "--rm", f"moor-no-image-{uuid.uuid4().hex[:6]}")
    assert result.returncode == 125
    assert "Unable to find image" in result.stderr


def test_daemon_not_running(moord: Any, tmp_path: Path) -> None:
    env = dict(moord.env, MOORAGE_HOST=f"unix://{tmp_path}/nothing.sock")
    result = moor(moord, "ps", env=env)
    assert result.returncode == 1
    assert result.stderr == (f"Cannot connect to the moorage daemon at unix://{tmp_path}/"
                             "nothing.sock. Is moord running?\n")


def test_version_and_info(moord: Any) -> None:
    version = ok(moord, "version")
    assert version.startswith("Client:\n Version:")
    assert "\nServer:" in version
    assert "API version:" in version
    info = ok(moord, "info")
    assert "\nServer:\n Containers: " in info


def test_container_prune(moord: Any, names: list[str]) -> None:
    name = unique(names, "prune")
    cid = ok(moord, "run", "-d", "--name", name, "busybox", "true").strip()
    ok(moord, "wait", name)
    out = ok(moord, "container", "prune", "-f")
    assert cid in out.splitlines()
    assert out.rstrip().splitlines()[-1].startswith("Total reclaimed space:")
    names.remove(name)


def test_attach_and_start_interactive(moord: Any, names: list[str]) -> None:
    name = unique(names, "attach")
    # it writes once it reads a line, which only an attached client can send: nothing is
    # written before the attach, however slow the machine
    ok(moord, "run", "-d", "-i", "--name", name, "busybox", "sh", "-c",
       "read line; echo one; echo two >&2; exit 6")
    result = moor(moord, "attach", name, input=b"go\n")
    assert (result.returncode, result.stdout, result.stderr) == (6, "one\n", "two\n")
    result = moor(moord, "attach", name)
    assert result.returncode == 1
    assert "cannot attach to a stopped container" in result.stderr

    name = unique(names, "startai")
    ok(moord, "create", "-i", "--name", name, "busybox", "sh", "-c",
       'read x; echo "in: $x"; exit 3')
    result = moor(moord, "start", "-ai", name, input=b"abc\n")
    assert (result.returncode, result.stdout) == (3, "in: abc\n"), result.stderr


def test_signals_are_forwarded(moord: Any, names: list[str]) -> None:
    import signal

    name = unique(names, "sig")
    proc = subprocess.Popen(
        [*moor_argv(), "run", "--name", name, "busybox", "sh", "-c",
         'trap "echo got TERM; exit 7" TERM; echo ready; while true; do sleep 0.1; done'],
        env=moord.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 7
    assert out == b"got TERM\n"


def test_moor_run_isolation_logging_and_namespace_flags(moord: Any) -> None:
    """moor's --cap-*, --security-opt, --group-add, --oom-score-adj, --log-*, --sysctl,
    --annotation, --expose and --privileged reach the container as docker's do."""
    name = "mflags"
    try:
        ok(moord, "run", "-d", "--name", name, "--cap-drop", "ALL", "--cap-add", "CHOWN",
             "--security-opt", "no-new-privileges", "--group-add", "123",
             "--oom-score-adj", "321", "--log-driver", "json-file", "--log-opt", "max-size=1m",
             "--sysctl", "net.ipv4.tcp_syncookies=0", "--annotation", "team=infra",
             "--expose", "8080", "busybox", "sleep", "300")
        inside = moord.docker("exec", name, "sh", "-c",
                              "grep -E 'CapEff|NoNewPrivs' /proc/self/status; id -G; "
                              "cat /proc/1/oom_score_adj /proc/sys/net/ipv4/tcp_syncookies"
                              ).stdout.split()
        assert inside[1] == "0000000000000001"  # CAP_CHOWN alone
        assert inside[3] == "1"  # no new privileges
        assert "123" in inside[4:-2]
        assert inside[-2:] == ["321", "0"]
        fields = json.loads(moord.docker(
            "inspect", "--format",
            "{{json .HostConfig.LogConfig}}|{{json .HostConfig.Annotations}}|{{json .Config.ExposedPorts}}",
            name).stdout.replace("|", ",").join(["[", "]"]))
        log_config, annotations, exposed = fields
        assert (log_config["Type"], log_config["Config"]["max-size"]) == ("json-file", "1m")
        assert (annotations, exposed) == ({"team": "infra"}, {"8080/tcp": {}})
        privileged = ok(moord, "run", "--rm", "--privileged", "busybox", "sh", "-c",
                        "grep CapEff /proc/self/status").split()[1]
        assert int(privileged, 16) > 1 << 21
    finally:
        moord.docker("rm", "-f", name, check=False)
