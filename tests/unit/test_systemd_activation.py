"""LISTEN_FDS/LISTEN_PID handling. The fd-3 case runs in a child process, as systemd starts
moord, so the test process's own fd 3 is not touched."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine.systemd.activation import listen_fds, listening_unix_socket, socket_path
from tests.support.daemon import REPO


def test_nothing_passed() -> None:
    assert listen_fds({}) == []


def test_fds_for_another_process_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    environ = {"LISTEN_FDS": "1", "LISTEN_PID": "1", "LISTEN_FDNAMES": "api"}
    assert listen_fds(environ, pid=4242) == []
    assert environ == {}
    assert "for pid 1" in caplog.text


def test_a_bad_count_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    assert listen_fds({"LISTEN_FDS": "many", "LISTEN_PID": "7"}, pid=7) == []
    assert "not a number" in caplog.text


def test_the_listening_unix_socket_is_chosen(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(tmp_path / "api.sock"))
    listening.listen()
    bound_only = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound_only.bind(str(tmp_path / "other.sock"))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fds = [bound_only.detach(), listening.detach(), udp.detach()]
    chosen = listening_unix_socket(fds)
    assert chosen is not None
    with chosen:
        assert socket_path(chosen) == str(tmp_path / "api.sock")
    for fd in (fds[0], fds[2]):  # the others are closed, with a word in the log
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(fd)
    assert caplog.text.count("is not the listening unix stream socket") == 2


_CHILD = """
import json, os
from engine.systemd.activation import listen_fds, listening_unix_socket, socket_path
os.dup2(int(os.environ.pop("TEST_FD")), 3)
os.environ["LISTEN_PID"] = str(os.getpid())
fds = listen_fds(os.environ)
sock = listening_unix_socket(fds)
print(json.dumps({"fds": fds, "path": socket_path(sock) if sock else None,
                  "inheritable": os.get_inheritable(3),
                  "left": sorted(k for k in os.environ if k.startswith("LISTEN_"))}))
"""


def test_fd_3_from_the_environment(tmp_path: Path) -> None:
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(tmp_path / "api.sock"))
    listening.listen()
    with listening:
        env = {**os.environ, "LISTEN_FDS": "1", "TEST_FD": str(listening.fileno())}
        out = subprocess.run([sys.executable, "-c", _CHILD], env=env, cwd=REPO, check=True,
                             capture_output=True, text=True, timeout=60,
                             pass_fds=(listening.fileno(),)).stdout
    assert json.loads(out) == {"fds": [3], "path": str(tmp_path / "api.sock"),
                               "inheritable": False, "left": []}
