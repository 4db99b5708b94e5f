"""The sd_notify client against a datagram socket the test made (path and abstract)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.systemd.notify import Notifier, socket_address, watchdog_interval
from tests.support.datagrams import datagram_socket


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    with datagram_socket(path, timeout=5) as sock:
        yield path, sock


def _lines(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_status_and_pid(receiver: tuple[str, socket.socket]) -> None:
    path, sock = receiver
    notifier = Notifier(path)
    assert notifier.ready("serving")
    assert _lines(sock) == ["READY=1", "STATUS=serving", f"MAINPID={os.getpid()}"]
    assert notifier.stopping("bye")
    assert _lines(sock) == ["STOPPING=1", "STATUS=bye"]
    assert notifier.watchdog()
    assert _lines(sock) == ["WATCHDOG=1"]
    reloading = _lines(sock) if notifier.reloading() else []
    assert reloading[0] == "RELOADING=1"
    assert reloading[1].startswith("MONOTONIC_USEC=")
    notifier.close()


def test_abstract_names() -> None:
    name = f"moorage-unit-notify-{os.getpid()}"
    with datagram_socket(b"\0" + name.encode(), timeout=5) as sock:
        assert socket_address("@" + name) == b"\0" + name.encode()
        assert Notifier("@" + name).status("hello")
        assert _lines(sock) == ["STATUS=hello"]


def test_without_a_socket_nothing_is_sent() -> None:
    environ = {"PATH": "/bin"}
    notifier = Notifier.from_environ(environ)
    assert not notifier.enabled
    assert not notifier.ready("x")


def test_the_variables_are_taken_out_of_the_environment(
        receiver: tuple[str, socket.socket]) -> None:
    path, sock = receiver
    environ = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1", "KEEP": "x"}
    notifier = Notifier.from_environ(environ)
    assert environ == {"KEEP": "x"}  # crun would otherwise hand the socket to a container
    assert notifier.status("ok")
    assert _lines(sock) == ["STATUS=ok"]


def test_a_relative_name_is_refused_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert not Notifier.from_environ({"NOTIFY_SOCKET": "relative/notify"}).enabled
    assert "absolute path" in caplog.text


def test_a_gone_manager_is_a_warning_not_an_error(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    assert not Notifier(str(tmp_path / "nobody")).ready("x")
    assert "notifying the service manager (READY=1) failed" in caplog.text


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
])
def test_watchdog_interval_is_half_the_timeout(environ: dict[str, str],
                                               expected: float | None) -> None:
    assert watchdog_interval(environ, pid=4242) == expected
