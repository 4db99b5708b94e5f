"""Stalled clients are cut off; streams that have begun are never touched.

A private moord runs with every clock at 2 s and a cap of 4 connections per process.
Raw sockets play the stalled clients (half a request head, half a body) and the greedy
one; the stock docker CLI plays the long-lived ones (`logs -f`, `events`, `wait`, an
`attach` whose stdin stays quiet, `stats`, a build whose step is silent for longer than
every clock), which must still deliver well after the stalled clients were cut. The
Prometheus counters are read from `--metrics-addr`.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from tests.support.daemon import DOCKER_CLI, SLOWNESS, Moord, host_problems
from tests.support.registry import free_port
from tests.support.unix_http import connect, error_message, read_to_end

CLOCK = 2  # every api-*-timeout of this module's moord (s)
PER_PROCESS = 4
#: how long a test waits for something that must happen (never an assertion on time)
PATIENCE = 60 * SLOWNESS


@attrs.define
class Daemon:
    moord: Moord
    metrics: str


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    problems = host_problems()
    if problems:
        pytest.fail("this host cannot run the integration tests:\n  " + "\n  ".join(problems),
                    pytrace=False)
    d = Moord(Path(tempfile.mkdtemp(prefix="moords-", dir="/tmp")))  # short: a socket path
    address = f"127.0.0.1:{free_port()}"
    try:
        d.start("--api-header-timeout", str(CLOCK), "--api-idle-timeout", str(CLOCK),
                "--api-body-timeout", str(CLOCK),
                "--api-max-connections-per-process", str(PER_PROCESS),
                "--metrics-addr", address)
        d.import_busybox()
        yield Daemon(d, f"http://{address}/metrics")
        assert "serving a connection failed" not in d.log_tail(100_000), d.log_tail()
    finally:
        d.cleanup()


def _counter(daemon: Daemon, series: str) -> float:
    with urllib.request.urlopen(daemon.metrics, timeout=10) as response:
        text: str = response.read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} is not exposed:\n{text}")


def _connect(d: Moord) -> socket.socket:
    return connect(d.socket_path, PATIENCE)


@attrs.define(eq=False)
class Follower:
    """A docker CLI process whose output lines are collected as they come, with when."""

    proc: subprocess.Popen[bytes]
    lines: queue.Queue[tuple[float, str]] = attrs.field(factory=queue.Queue)

    @classmethod
    def start(cls, d: Moord, *args: str, stdin: bool = False,
              env: dict[str, str] | None = None) -> Follower:
        proc = subprocess.Popen([DOCKER_CLI, *args], env={**d.env, **(env or {})},
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        follower = cls(proc)
        threading.Thread(target=follower._read, daemon=True).start()
        return follower

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))

    def expect(self, wanted: str, *, after: float = 0.0) -> str:
        """The first line containing `wanted` that arrived after `after` (monotonic)."""
        deadline = time.monotonic() + PATIENCE
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                when, line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, f"{self.proc.args!r} ended: {seen[-5:]}"
                continue
            seen.append(line)
            if wanted in line and when > after:
                return line
        raise AssertionError(f"{self.proc.args!r}: no {wanted!r} after the cut; saw {seen[-5:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _stall_head(d: Moord) -> bytes:
    with _connect(d) as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: moord\r\n")  # the blank line never comes
        return read_to_end(s)


def _stall_body(d: Moord) -> bytes:
    with _connect(d) as s:
        s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: moord\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
                  b'{"Image": "busy')
        return read_to_end(s)


def test_stalled_clients_are_cut_while_streams_keep_streaming(daemon: Daemon,
                                                              tmp_path: Path) -> None:
    d = daemon.moord
    (tmp_path / "Dockerfile").write_text(  # quiet for longer than the whole test's clocks
        'FROM busybox\nRUN sleep 15 && echo "built $((6*7))"\n')
    d.docker("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
             "i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done")
    d.docker("run", "-d", "--name", "waiter", "busybox", "sleep", "3600")
    d.docker("run", "-d", "-i", "--name", "echoer", "busybox", "cat")
    followers: list[Follower] = []
    try:
        logs = Follower.start(d, "logs", "-f", "ticker")
        events = Follower.start(d, "events", "--format",
                                "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
        wait = Follower.start(d, "wait", "waiter")
        attach = Follower.start(d, "attach", "echoer", stdin=True)
        stats = Follower.start(d, "stats", "--format", "{{.Name}} pids={{.PIDs}}", "ticker")
        build = Follower.start(d, "build", "-t", "built-slowly", str(tmp_path),
                               env={"DOCKER_BUILDKIT": "0"})
        followers += [logs, events, wait, attach, stats, build]
        logs.expect("tick")
        d.docker("create", "--name", "before-the-stall", "busybox", "true")
        events.expect("container create before-the-stall")
        cut_head = _counter(daemon, 'moorage_api_connections_cut_total{reason="header-timeout"}')
        cut_body = _counter(daemon, 'moorage_api_connections_cut_total{reason="body-stalled"}')

        # the stalled clients, both at once: answered 408 and closed
        answers: dict[str, bytes] = {}
        stalls = [threading.Thread(target=lambda n=name, f=fn: answers.__setitem__(n, f(d)))
                  for name, fn in (("head", _stall_head), ("body", _stall_body))]
        for t in stalls:
            t.start()
        for t in stalls:
            t.join(PATIENCE)
        assert answers["head"].startswith(b"HTTP/1.1 408 "), answers["head"][:200]
        assert "request head not received within 2 s" in error_message(answers["head"])
        assert answers["body"].startswith(b"HTTP/1.1 408 "), answers["body"][:200]
        assert "request body stalled" in error_message(answers["body"])
        cut = time.monotonic()
        assert _counter(daemon, 'moorage_api_connections_cut_total{reason="header-timeout"}') \
            >= cut_head + 1
        assert _counter(daemon, 'moorage_api_connections_cut_total{reason="body-stalled"}') \
            >= cut_body + 1

        # well past every clock, each long-lived connection still delivers
        time.sleep(2 * CLOCK)
        later = time.monotonic()
        logs.expect("tick", after=later)
        stats.expect("ticker pids=", after=later)
        d.docker("create", "--name", "after-the-stall", "busybox", "true")
        events.expect("container create after-the-stall", after=later)
        assert attach.proc.stdin is not None
        attach.proc.stdin.write(b"still attached\n")
        attach.proc.stdin.flush()
        attach.expect("still attached", after=later)
        d.docker("kill", "waiter")
        assert wait.expect("137", after=cut) == "137"
        assert wait.proc.wait(PATIENCE) == 0
        for f in (logs, events, attach, stats):
            assert f.proc.poll() is None, f"{f.proc.args!r} ended"
        build.expect("built 42", after=later)
        build.expect("Successfully tagged built-slowly", after=later)
        assert build.proc.wait(PATIENCE) == 0
    finally:
        for f in followers:
            f.stop()
        d.docker("rm", "-f", "ticker", "waiter", "echoer", "before-the-stall", "after-the-stall",
                 check=False)
        d.docker("rmi", "-f", "built-slowly", check=False)


def test_a_slow_upload_that_keeps_moving_is_not_cut(daemon: Daemon) -> None:
    """Pieces of a body a quarter of the clock apart, for twice the clock in all."""
    d = daemon.moord
    body = json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode().ljust(64)
    with _connect(d) as s:
        s.sendall(b"POST /containers/create?name=slow-upload HTTP/1.1\r\nHost: moord\r\n"
                  b"Content-Type: application/json\r\nConnection: close\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode())
        for i in range(0, len(body), 8):
            time.sleep(CLOCK / 4)
            s.sendall(body[i : i + 8])
        answer = read_to_end(s)
    try:
        assert answer.startswith(b"HTTP/1.1 201 "), answer[:300]
    finally:
        d.docker("rm", "-f", "slow-upload", check=False)


def _ping(s: socket.socket) -> bytes:
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: moord\r\n\r\n")
    return s.recv(65536)


def test_a_process_over_its_cap_is_refused_until_one_closes(daemon: Daemon) -> None:
    d = daemon.moord
    refused_before = _counter(daemon, 'moorage_api_connections_refused_total{cap="process"}')
    held: list[socket.socket] = []
    try:
        for _ in range(PER_PROCESS):  # streams: no clock closes them
            s = _connect(d)
            s.sendall(b"GET /events HTTP/1.1\r\nHost: moord\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
            held.append(s)
        with _connect(d) as one_too_many:
            one_too_many.sendall(b"GET /_ping HTTP/1.1\r\nHost: moord\r\n\r\n")
            answer = read_to_end(one_too_many)
        assert answer.startswith(b"HTTP/1.1 429 "), answer[:300]
        message = error_message(answer)
        assert f"process {os.getpid()}" in message
        assert "api-max-connections-per-process" in message
        assert _counter(daemon, 'moorage_api_connections_refused_total{cap="process"}') \
            >= refused_before + 1
        # other processes are not this one: the docker CLI still works
        assert d.docker("version", "--format", "{{.Server.Version}}").stdout.strip()

        held.pop().close()
        deadline = time.monotonic() + PATIENCE
        while True:  # once moord has seen the close, one more is let in
            with _connect(d) as again:
                answer = _ping(again)
            if answer.startswith(b"HTTP/1.1 200 "):
                break
            assert answer.startswith(b"HTTP/1.1 429 "), answer[:300]
            assert time.monotonic() < deadline, "the closed connection was never counted out"
            time.sleep(0.1)
    finally:
        for s in held:
            s.close()


def _events_stream(d: Moord) -> socket.socket:
    """A connection following `GET /events` (retried while moord has yet to count out the
    ping of its start)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        s = _connect(d)
        s.sendall(b"GET /events HTTP/1.1\r\nHost: moord\r\n\r\n")
        head = s.recv(65536)
        if head.startswith(b"HTTP/1.1 200 "):
            return s
        s.close()
        assert time.monotonic() < deadline, head[:300]
        time.sleep(0.1)


def test_a_reload_raises_the_cap_without_cutting_the_streams(
        fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    config = d.root / "daemon.toml"
    d.root.mkdir(parents=True, exist_ok=True)
    config.write_text("api-max-connections-per-process = 1\n")
    d.start("--config-file", str(config))
    with _events_stream(d) as events:
        with _connect(d) as second:
            assert _ping(second).startswith(b"HTTP/1.1 429 ")
        config.write_text("api-max-connections-per-process = 2\n")
        log = d.reload("configuration reloaded")
        assert "changed: api_max_connections_per_process" in log
        seen = b""
        while b'"reload"' not in seen:  # the stream that was open goes on: it reports the reload
            chunk = events.recv(65536)
            assert chunk, f"the events stream ended: {seen!r}"
            seen += chunk
        with _connect(d) as second:
            assert _ping(second).startswith(b"HTTP/1.1 200 ")
