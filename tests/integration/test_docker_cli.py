"""The stock docker CLI (28) against moord: the issue's list of commands, for real."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.daemon import Moord, inspect


def test_version_and_info(moord: Moord) -> None:
    out = moord.docker("version").stdout
    assert "Server:" in out
    assert "API version:" in out
    assert "1.50" in out
    info = json.loads(moord.docker("info", "--format", "{{json .}}").stdout)
    assert info["OSType"] == "linux"
    assert info["Driver"] == "overlay"
    assert info["DefaultRuntime"] in ("crun", "runc")
    assert info["CgroupVersion"] in ("1", "2")


def test_run_prints_output_and_removes(moord: Moord) -> None:
    result = moord.docker("run", "--rm", "busybox", "echo", "hi")
    assert result.stdout == "hi\n"
    assert result.stderr == ""
    names = moord.docker("ps", "-a", "--format", "{{.Names}}").stdout
    assert names.strip() == "" or "busybox" not in names


def test_run_exit_codes_and_stderr(moord: Moord) -> None:
    result = moord.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3",
                          check=False)
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_run_missing_command_is_127(moord: Moord) -> None:
    result = moord.docker("run", "--rm", "busybox", "/nonexistent", check=False)
    assert result.returncode == 127
    assert "nonexistent" in result.stderr


def test_detached_lifecycle(moord: Moord) -> None:
    cid = moord.docker("run", "-d", "--name", "x", "busybox", "sh", "-c",
                       "echo started; exec sleep 60").stdout.strip()
    assert len(cid) == 64
    try:
        ps = moord.docker("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout
        assert f"{cid[:12]} x Up" in ps
        _wait_for_log(moord, "x", "started")
        assert moord.docker("logs", "x").stdout == "started\n"
        data = inspect(moord, "x")
        assert data["Name"] == "/x"
        state = data["State"]
        assert isinstance(state, dict)
        assert state["Running"] is True
        assert state["Pid"] > 0
        started = time.monotonic()
        moord.docker("stop", "-t", "2", "x")
        elapsed = time.monotonic() - started
        # sleep as PID 1 ignores TERM: the grace period runs out and SIGKILL follows
        assert elapsed >= 1.5
        state = inspect(moord, "x")["State"]
        assert isinstance(state, dict)
        assert state["Status"] == "exited"
        assert state["ExitCode"] == 137
    finally:
        moord.docker("rm", "-f", "x", check=False)
    assert "No such object: x" in moord.docker("inspect", "x", check=False).stderr


def test_stop_with_handler_gives_143_quickly(moord: Moord) -> None:
    moord.docker("run", "-d", "--name", "trap", "--init", "busybox", "sleep", "60")
    try:
        moord.docker("stop", "-t", "10", "trap")
        state = inspect(moord, "trap")["State"]
        assert isinstance(state, dict)
        assert state["ExitCode"] == 143
    finally:
        moord.docker("rm", "-f", "trap", check=False)


def test_rm_force_running_container(moord: Moord) -> None:
    moord.docker("run", "-d", "--name", "rmf", "busybox", "sleep", "60")
    refused = moord.docker("rm", "rmf", check=False)
    assert refused.returncode != 0
    assert "stop the container before removing or force remove" in refused.stderr
    moord.docker("rm", "-f", "rmf")
    assert "rmf" not in moord.docker("ps", "-a", "--format", "{{.Names}}").stdout


def test_name_conflict_is_409(moord: Moord) -> None:
    moord.docker("create", "--name", "dup", "busybox", "true")
    try:
        result = moord.docker("create", "--name", "dup", "busybox", "true", check=False)
        assert result.returncode != 0
        assert 'The container name "/dup" is already in use' in result.stderr
    finally:
        moord.docker("rm", "dup")


def test_missing_image(moord: Moord) -> None:
    result = moord.docker("run", "--rm", "nosuchimage:1.0", "true", check=False)
    assert result.returncode == 125
    assert "Unable to find image 'nosuchimage:1.0' locally" in result.stderr


def test_images_listing(moord: Moord) -> None:
    out = moord.docker("images").stdout
    assert "REPOSITORY" in out
    assert "busybox" in out
    assert "latest" in out


def test_env_workdir_user_hostname(moord: Moord) -> None:
    out = moord.docker(
        "run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "nobody", "--hostname", "box",
        "busybox", "sh", "-c", 'echo "$FOO $(pwd) $(id -u) $(hostname)"').stdout
    assert out == "bar /tmp 65534 box\n"


def test_network_none_has_only_loopback(moord: Moord) -> None:
    out = moord.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    assert "lo" in out
    assert "eth0" not in out


def test_network_host_sees_host_interfaces(moord: Moord) -> None:
    out = moord.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout
    assert len(out.strip().splitlines()) >= 1
    assert "lo" in out


def test_wait_and_restart_and_rename(moord: Moord) -> None:
    moord.docker("run", "-d", "--name", "w1", "busybox", "sh", "-c", "sleep 0.3; exit 7")
    try:
        assert moord.docker("wait", "w1").stdout.strip() == "7"
        moord.docker("rename", "w1", "w2")
        assert inspect(moord, "w2")["Name"] == "/w2"
        moord.docker("restart", "-t", "1", "w2")
        assert moord.docker("wait", "w2").stdout.strip() == "7"
    finally:
        moord.docker("rm", "-f", "w1", "w2", check=False)


def test_kill_with_signal(moord: Moord) -> None:
    moord.docker("run", "-d", "--name", "k", "--init", "busybox", "sleep", "60")
    try:
        moord.docker("kill", "-s", "INT", "k")
        assert moord.docker("wait", "k").stdout.strip() == "130"
        result = moord.docker("kill", "k", check=False)
        assert result.returncode != 0
        assert "is not running" in result.stderr
    finally:
        moord.docker("rm", "-f", "k", check=False)


def test_ps_filters_and_prune(moord: Moord) -> None:
    moord.docker("run", "--name", "pr1", "--label", "suite=prune", "busybox", "true")
    moord.docker("run", "-d", "--name", "pr2", "--label", "suite=prune", "busybox", "sleep", "60")
    try:
        names = moord.docker("ps", "-a", "--filter", "label=suite=prune", "--filter",
                             "status=exited", "--format", "{{.Names}}").stdout.split()
        assert names == ["pr1"]
        moord.docker("container", "prune", "-f", "--filter", "label=suite=prune")
        left = moord.docker("ps", "-a", "--filter", "label=suite=prune",
                            "--format", "{{.Names}}").stdout.split()
        assert left == ["pr2"]
    finally:
        moord.docker("rm", "-f", "pr1", "pr2", check=False)


def test_container_prune_until_takes_a_duration(moord: Moord) -> None:
    """`until` is read as dockerd reads it for every prune: a duration ago, a date, or
    unix seconds (container prune once took only the last two)."""
    moord.docker("create", "--name", "pru1", "--label", "suite=pruneuntil", "busybox", "true")
    try:
        moord.docker("container", "prune", "-f", "--filter", "until=1h",
                     "--filter", "label=suite=pruneuntil")
        left = moord.docker("ps", "-a", "--filter", "label=suite=pruneuntil",
                            "--format", "{{.Names}}").stdout.split()
        assert left == ["pru1"], "created less than an hour ago: kept"
        moord.docker("container", "prune", "-f", "--filter", "until=-1m",
                     "--filter", "label=suite=pruneuntil")
        left = moord.docker("ps", "-a", "--filter", "label=suite=pruneuntil",
                            "--format", "{{.Names}}").stdout.split()
        assert left == []
        refused = moord.docker("container", "prune", "-f", "--filter", "until=soon", check=False)
        assert refused.returncode != 0
        assert 'failed to parse value as time or duration: \"soon\"' in refused.stderr \
            or 'failed to parse value as time or duration: "soon"' in refused.stderr
    finally:
        moord.docker("rm", "-f", "pru1", check=False)


def test_stdin_is_passed_to_container(moord: Moord) -> None:
    result = moord.docker("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z",
                          input=b"hello stdin\n")
    assert result.stdout == "HELLO STDIN\n"


@pytest.mark.parametrize("flag", ["-t", "--time"])
def test_stop_of_stopped_container_is_fine(moord: Moord, flag: str) -> None:
    moord.docker("create", "--name", "idle", "busybox", "true")
    try:
        moord.docker("stop", flag, "1", "idle")
    finally:
        moord.docker("rm", "idle")


def _wait_for_log(moord: Moord, name: str, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in moord.docker("logs", name).stdout:
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in the logs of {name}")
