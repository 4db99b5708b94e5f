"""docker-compose (Debian's 1.29, on docker-py 5) drives moord unchanged: a two-service
project with a published port, a named volume, a network with service-name DNS,
depends_on, logs, exec (with and without a terminal), run --rm, top, pause, and down."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Moord
from tests.support.terminal import Terminal

pytestmark = pytest.mark.integration

COMPOSE = "/usr/bin/docker-compose"

PROJECT = """\
version: "3.8"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html
                           && httpd -f -p 8080 -h /www"]
    ports:
      - "127.0.0.1::8080"
    volumes:
      - data:/data
    environment:
      GREETING: hi-from-compose
  client:
    image: busybox
    command: ["sh", "-c", "until wget -qO- http://web:8080/; do sleep 0.2; done; sleep 300"]
    depends_on:
      - web
volumes:
  data:
"""


@pytest.fixture
def project(moord: Moord, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    if shutil.which(COMPOSE) is None:
        pytest.fail(f"{COMPOSE} is missing: scripts/test.sh installs Debian's docker-compose")
    (tmp_path / "docker-compose.yml").write_text(PROJECT)
    name = f"cp{secrets.token_hex(3)}"
    yield tmp_path, name
    subprocess.run([COMPOSE, "-p", name, "down", "-v", "-t", "0"], cwd=tmp_path, env=moord.env,
                   capture_output=True, timeout=120, check=False)


def compose(moord: Moord, project: tuple[Path, str], *args: str,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    directory, name = project
    result = subprocess.run([COMPOSE, "-p", name, *args], cwd=directory, env=moord.env,
                            capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker-compose {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}\nmoord log:\n{moord.log_tail(30)}")
    return result


def test_compose_project_lifecycle(moord: Moord, project: tuple[Path, str]) -> None:
    compose(moord, project, "up", "-d")
    ps = compose(moord, project, "ps").stdout
    assert ps.count(" Up ") == 2, ps
    port = compose(moord, project, "port", "web", "8080").stdout.strip()
    host, _, number = port.rpartition(":")
    assert host == "127.0.0.1"
    deadline = time.monotonic() + 30
    while True:  # httpd needs a moment to listen
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{number}/", timeout=5) as answer:
                assert answer.read() == b"hello-from-web\n"
            break
        except OSError:
            assert time.monotonic() < deadline, "the published port never answered"
            time.sleep(0.1)
    # the client found web by its service name on the project network
    while "hello-from-web" not in compose(moord, project, "logs", "client").stdout:
        assert time.monotonic() < deadline, "client never reached web by name"
        time.sleep(0.1)
    out = compose(moord, project, "exec", "-T", "web", "sh", "-c",
                  "echo $GREETING; echo kept > /data/file").stdout
    assert out == "hi-from-compose\n"
    ran = compose(moord, project, "run", "--rm", "-T", "web", "cat", "/data/file").stdout
    assert ran == "kept\n", "run --rm shares the named volume"
    assert "httpd" in compose(moord, project, "top", "web").stdout
    compose(moord, project, "pause", "web")
    assert "Paused" in compose(moord, project, "ps", "web").stdout
    compose(moord, project, "unpause", "web")
    compose(moord, project, "down", "-v", "-t", "0")
    assert compose(moord, project, "ps", "-q").stdout.strip() == ""
    volumes = moord.docker("volume", "ls", "-q").stdout.split()
    assert f"{project[1]}_data" not in volumes


def test_compose_exec_with_a_terminal(moord: Moord, project: tuple[Path, str]) -> None:
    compose(moord, project, "up", "-d", "web")
    directory, name = project
    term = Terminal.spawn([COMPOSE, "--project-directory", str(directory), "-f",
                           str(directory / "docker-compose.yml"), "-p", name, "exec", "web", "sh"],
                          moord.env, rows=21, columns=77)
    try:
        term.type(b"echo $GREETING-$((2+2)); stty size\n")
        out = term.expect(b"21 77")
        assert b"hi-from-compose-4" in out
        term.type(b"exit 5\n")
        assert term.wait() == 5
    finally:
        term.close()
