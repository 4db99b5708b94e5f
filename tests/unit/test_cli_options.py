"""Flag values → API values: env, env files, labels, filters, times, restart policies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli import running
from engine.cli.options import (
    ContainerOptions,
    OptionError,
    api_timestamp,
    build_env,
    build_filters,
    build_labels,
    env_entry,
    familiar_reference,
    normalized_repo,
    parse_go_duration,
    parse_kv_file,
    restart_policy,
    split_reference,
)


def test_env_entry_takes_bare_names_from_our_environment() -> None:
    env = {"HOME": "/root", "EMPTY": ""}
    assert env_entry("A=b=c", env) == "A=b=c"
    assert env_entry("HOME", env) == "HOME=/root"
    assert env_entry("EMPTY", env) == "EMPTY="
    assert env_entry("UNSET", env) == "UNSET"  # passed as is, like docker
    with pytest.raises(OptionError):
        env_entry("=x", env)


def test_kv_file_format() -> None:
    text = ("\ufeff# comment\n"
            "\n"
            "   A=1\n"
            "B=two words  \n"
            "FROM_ENV\n"
            "NOT_SET\n"
            "C=\n")
    assert parse_kv_file(text, "f", {"FROM_ENV": "yes"}) == [
        "A=1", "B=two words  ", "FROM_ENV=yes", "C="]
    with pytest.raises(OptionError, match="contains whitespaces"):
        parse_kv_file("BAD KEY=1\n", "f", {})
    with pytest.raises(OptionError, match="no variable name"):
        parse_kv_file("=1\n", "f", {})


def test_env_files_come_before_flags(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("A=file\nB=file\n")
    assert build_env(["A=flag", "HOME"], [str(env_file)], {"HOME": "/h"}) == [
        "A=file", "B=file", "A=flag", "HOME=/h"]
    with pytest.raises(OptionError, match=r"open .*missing"):
        build_env([], [str(tmp_path / "missing")], {})


def test_labels(tmp_path: Path) -> None:
    label_file = tmp_path / "labels"
    label_file.write_text("a=1\nb=from-file\n")
    assert build_labels(["b=2", "flag"], [str(label_file)]) == {"a": "1", "b": "2", "flag": ""}


def test_filters_json() -> None:
    assert build_filters([]) is None
    assert json.loads(build_filters(["status=exited", "Label=a=b", "status=dead"]) or "") == {
        "status": {"exited": True, "dead": True}, "label": {"a=b": True}}
    with pytest.raises(OptionError, match="bad format of filter"):
        build_filters(["status"])


@pytest.mark.parametrize(("text", "seconds"), [
    ("10m", 600.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("300ms", 0.3), ("-5s", -5.0),
    ("2h45m30s", 9930.0), ("0", 0.0), ("1us", 1e-6),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10", "m", "1x", "", "1h-5m", "."])
def test_not_go_durations(text: str) -> None:
    assert parse_go_duration(text) is None


@pytest.fixture
def utc() -> Iterator[None]:
    import os

    saved = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.usefixtures("utc")
@pytest.mark.parametrize(("text", "expected"), [
    ("10m", "1000000000.000000000"),  # durations count back from now (here 1000000600)
    ("1h", "999997000.000000000"),
    ("2013-01-02T13:23:37Z", "1357133017.000000000"),
    ("2013-01-02T13:23:37.5Z", "1357133017.500000000"),
    ("2013-01-02T13:23:37.123456789+01:00", "1357129417.123456789"),
    ("2013-01-02T13:23:37", "1357133017.000000000"),  # no zone: local time (TZ=UTC here)
    ("2013-01-02T13:23", "1357132980.000000000"),
    ("2013-01-02", "1357084800.000000000"),
    ("1357133017", "1357133017"),  # unix seconds pass through
    ("1357133017.25", "1357133017.25"),
    ("0", "0"),
])
def test_api_timestamp(text: str, expected: str) -> None:
    assert api_timestamp(text, now=1_000_000_600.0) == expected


def test_api_timestamp_local_zone() -> None:
    import os

    saved = os.environ.get("TZ")
    os.environ["TZ"] = "EST+5"
    time.tzset()
    try:
        assert api_timestamp("2013-01-02T13:23:37") == "1357151017.000000000"
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.parametrize("text", ["yesterday", "2013-13-02", "2013-01-02T25:00:00Z", "1e5"])
def test_api_timestamp_rejects(text: str) -> None:
    with pytest.raises(OptionError):
        api_timestamp(text)


def test_restart_policy() -> None:
    assert restart_policy(None) == {"Name": "no", "MaximumRetryCount": 0}
    assert restart_policy("always") == {"Name": "always", "MaximumRetryCount": 0}
    assert restart_policy("on-failure:5") == {"Name": "on-failure", "MaximumRetryCount": 5}
    for bad in ("sometimes", "always:3", "on-failure:x", "on-failure:-1"):
        with pytest.raises(OptionError, match="invalid restart policy"):
            restart_policy(bad)


def test_references() -> None:
    assert split_reference("busybox") == ("busybox", "latest")
    assert split_reference("localhost:5000/a/b:v1") == ("localhost:5000/a/b", "v1")
    assert split_reference("localhost:5000/a") == ("localhost:5000/a", "latest")
    assert split_reference("a@sha256:00") == ("a@sha256:00", "")
    assert normalized_repo("busybox") == "docker.io/library/busybox"
    assert normalized_repo("me/app") == "docker.io/me/app"
    assert normalized_repo("quay.io/x/y") == "quay.io/x/y"
    assert normalized_repo("localhost/y") == "localhost/y"
    assert familiar_reference("busybox") == "busybox:latest"


def test_run_options_after_image_belong_to_the_command() -> None:
    ctx = running.run.make_context(
        "run", ["-d", "--rm", "-e", "A=1", "busybox", "sh", "-c", "echo", "-e", "--rm", "-d"])
    assert ctx.params["image"] == "busybox"
    assert ctx.params["command"] == ("sh", "-c", "echo", "-e", "--rm", "-d")
    assert ctx.params["env"] == ("A=1",)
    assert ctx.params["detach"] is True


def test_run_combined_short_flags_and_hostname() -> None:
    ctx = running.run.make_context("run", ["-it", "-h", "box", "-eX=1", "busybox"])
    assert (ctx.params["interactive"], ctx.params["tty"]) == (True, True)
    assert ctx.params["hostname"] == "box"
    assert ctx.params["env"] == ("X=1",)
    assert ctx.params["command"] == ()


def test_create_body_shape() -> None:
    body = ContainerOptions(image="busybox", command=["true"], interactive=True,
                            entrypoint="", stop_timeout=3, network="host").create_body()
    assert body["Cmd"] == ["true"]
    assert body["Entrypoint"] == [""]  # --entrypoint "" resets the image's entrypoint
    assert (body["AttachStdin"], body["OpenStdin"], body["StdinOnce"]) == (True, True, True)
    assert body["StopTimeout"] == 3
    assert "StopSignal" not in body
    assert body["HostConfig"]["NetworkMode"] == "host"
    assert "Init" not in body["HostConfig"]
    detached = ContainerOptions(image="busybox", detach=True, interactive=True).create_body()
    assert (detached["AttachStdin"], detached["AttachStdout"], detached["OpenStdin"]) == (
        False, False, True)
    assert detached["Env"] is None
    assert detached["HostConfig"]["NetworkMode"] == "default"
