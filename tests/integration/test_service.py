"""moord as a systemd service, against a real moord: the notify protocol (READY, RELOADING,
STOPPING, WATCHDOG) on a notify socket the test made, socket activation with a listening
socket the test made and passed as fd 3, HUP changing a live setting, and --version."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import engine
from tests.support.daemon import REPO, Moord
from tests.support.datagrams import datagram_socket, receive_journal_entry


def receive_until(sock: socket.socket, wanted: str, seen: list[str]) -> list[str]:
    """Datagrams up to the first that has the assignment `wanted` (all kept in `seen`)."""
    while True:
        datagram = sock.recv(4096).decode()
        seen.append(datagram)
        if wanted in datagram.split("\n"):
            return seen


def fields(datagram: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.split("\n") if "=" in line)


def test_notify_ready_reloading_stopping(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    address = str(d.root / "notify.sock")
    with datagram_socket(address) as sock:
        d.start(environ={"NOTIFY_SOCKET": address})
        seen: list[str] = []
        ready = fields(receive_until(sock, "READY=1", seen)[-1])
        assert d.proc is not None
        assert ready["MAINPID"] == str(d.proc.pid)
        assert "serving on" in ready["STATUS"]
        # READY came once the API answered: the daemon answers now, and had no READY before
        assert not any("READY=1" in s.split("\n") for s in seen[:-1])
        assert d.docker("version").returncode == 0

        d.proc.send_signal(signal.SIGHUP)
        reloading = fields(receive_until(sock, "RELOADING=1", seen)[-1])
        assert int(reloading["MONOTONIC_USEC"]) > 0
        receive_until(sock, "READY=1", seen)

        d.proc.send_signal(signal.SIGTERM)
        stopping = fields(receive_until(sock, "STOPPING=1", seen)[-1])
        assert "SIGTERM" in stopping["STATUS"]
        assert d.proc.wait(timeout=60) == 0


def test_watchdog_pings_on_an_abstract_socket(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    name = f"@moorage-test-notify-{os.getpid()}-{d.root.name}"
    with datagram_socket(b"\0" + name[1:].encode()) as sock:
        # 1 s watchdog: moord pings every 0.5 s from its event loop
        d.start(environ={"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "1000000"})
        seen: list[str] = []
        receive_until(sock, "READY=1", seen)
        pings = 0
        while pings < 3:
            pings += "WATCHDOG=1" in sock.recv(4096).decode().split("\n")
        assert d.docker("version").returncode == 0


def test_watchdog_for_another_pid_is_not_pinged(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    address = str(d.root / "notify.sock")
    with datagram_socket(address) as sock:
        d.start(environ={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000",
                         "WATCHDOG_PID": "1"})
        seen: list[str] = []
        receive_until(sock, "READY=1", seen)
        d.stop()
        receive_until(sock, "STOPPING=1", seen)
        assert not any("WATCHDOG=1" in s.split("\n") for s in seen)


def _listening_socket(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o660)
    sock.listen(64)
    return sock


def _ping_request(path: Path) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(120)
    client.connect(str(path))
    client.sendall(b"GET /_ping HTTP/1.1\r\nHost: moorage\r\nConnection: close\r\n\r\n")
    return client


def test_socket_activation_answers_clients_that_came_first(
        fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    listening = _listening_socket(d.socket_path)
    try:
        early = _ping_request(d.socket_path)  # moord is not running yet: the kernel queues it
        d.start(listening=listening)
        assert early.recv(4096).startswith(b"HTTP/1.1 200")
        early.close()
        assert d.docker("version").returncode == 0

        # moord stops: the socket stays (it is the "manager's"), a client waits through the
        # restart and the next moord, given the same socket, answers it
        d.stop()
        assert d.socket_path.exists()
        waiting = _ping_request(d.socket_path)
        d.start(listening=listening)
        assert waiting.recv(4096).startswith(b"HTTP/1.1 200")
        waiting.close()
        assert "serving the socket systemd passed" not in d.log_tail(400)
    finally:
        listening.close()


def test_hup_changes_log_defaults_and_registry_mirrors(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    config = d.root / "daemon.toml"
    config.write_text('log-max-size = "20m"\n')
    d.start("--config-file", str(config))
    d.import_busybox()
    d.docker("create", "--name", "before", "busybox", "true")
    config.write_text('log-max-size = "3m"\nlog-max-file = 2\n'
                      'registry-mirrors = ["https://mirror.invalid"]\n')
    assert ("configuration reloaded (changed: log_max_size, log_max_file, registry_mirrors)"
            in d.reload("configuration reloaded"))
    mirrors = d.docker("info", "-f", "{{json .RegistryConfig.Mirrors}}").stdout
    assert "https://mirror.invalid" in mirrors
    d.docker("create", "--name", "after", "busybox", "true")
    before = d.docker("inspect", "-f", "{{json .HostConfig.LogConfig.Config}}", "before").stdout
    after = d.docker("inspect", "-f", "{{json .HostConfig.LogConfig.Config}}", "after").stdout
    assert '"max-size":"20m"' in before
    assert '"max-size":"3m"' in after
    assert '"max-file":"2"' in after


def test_hup_with_a_bad_file_keeps_the_running_configuration(
        fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    config = d.root / "daemon.toml"
    config.write_text('log-level = "debug"\n')
    d.start("--config-file", str(config))
    config.write_text('log-driver = "no-such-driver"\n')
    assert "'no-such-driver' is not a known log driver" in d.reload("keeping the old one")
    assert d.docker("info", "-f", "{{.LoggingDriver}}").stdout.strip() == "json-file"


def test_version_flags() -> None:
    moord = subprocess.run([sys.executable, "-m", "engine.daemon", "--version"], cwd=REPO,
                           capture_output=True, text=True, timeout=60, check=True)
    assert moord.stdout.strip() == f"moord version {engine.__version__}"
    moor = subprocess.run([sys.executable, "-m", "engine.cli", "--version"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True)
    assert moor.stdout.strip().startswith(f"moor version {engine.__version__}")


JOURNAL_SOCKET = Path("/run/systemd/journal/socket")


class _Journald:
    """Takes journald's place: a thread reads entries as they come, so moord's sends never
    find a full queue (they would go to stderr then)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.entries: queue.Queue[dict[str, str]] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                self.entries.put(receive_journal_entry(self.sock))
            except OSError:
                return

    def until(self, wanted: Callable[[dict[str, str]], bool]) -> list[dict[str, str]]:
        seen: list[dict[str, str]] = []
        while not seen or not wanted(seen[-1]):
            seen.append(self.entries.get(timeout=120))
        return seen


def test_journal_entries_carry_the_container_and_the_event(
        fresh_moord: Callable[[], Moord]) -> None:
    """moord logging to journald's socket: this machine has no journald, so the test
    listens there in its place (and fails, saying so, where a real one does)."""
    assert not JOURNAL_SOCKET.exists(), (
        f"{JOURNAL_SOCKET} exists (journald runs here): this test takes journald's place, "
        "run it on a host without systemd")
    JOURNAL_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    with datagram_socket(str(JOURNAL_SOCKET), timeout=None, receive_buffer=4 << 20) as sock:
        journald = _Journald(sock)
        try:
            d = fresh_moord()
            d.start("--log-target", "journal")
            journald.until(lambda e: e.get("EVENT") == "start")
            d.import_busybox()
            cid = d.docker("run", "-d", "--name", "told", "busybox", "sh", "-c", "exit 3").stdout.strip()
            entries = journald.until(lambda e: e.get("EVENT") == "die")
            died = entries[-1]
            assert died["CONTAINER_ID"] == cid[:12]
            assert died["CONTAINER_ID_FULL"] == cid
            assert died["CONTAINER_NAME"] == "told"
            assert died["PRIORITY"] == "6"
            assert died["SYSLOG_IDENTIFIER"] == "moord"
            assert died["CODE_FILE"].endswith("engine/containers/manager.py")
            assert "exitCode=3" in died["MESSAGE"]
            assert any(e.get("EVENT") == "start" and e.get("CONTAINER_ID") == cid[:12]
                       for e in entries)
            assert "container " not in d.log_tail(400)  # nothing of it went to stderr
        finally:
            sock.shutdown(socket.SHUT_RDWR)
            JOURNAL_SOCKET.unlink(missing_ok=True)


def test_a_refusal_under_the_watchdog_says_why(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    address = str(d.root / "notify.sock")
    with datagram_socket(address) as sock:
        try:
            d.start("--log-driver", "no-such-driver",
                    environ={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"})
        except RuntimeError as exc:
            said = str(exc)
        else:
            raise AssertionError("moord started with an unknown log driver")
        assert d.proc is not None
        assert d.proc.returncode == 1
        assert "this host cannot run containers: log-driver 'no-such-driver'" in said
        assert "Traceback" not in said
        seen = [sock.recv(4096).decode()]
        while "STATUS=this host cannot run containers: log-driver 'no-such" not in seen[-1]:
            seen.append(sock.recv(4096).decode())
        assert not any("READY=1" in s.split("\n") for s in seen)
