"""The counters the engine's steps record into, driven through the container manager on its
fake runtime (tests/unit/test_container_manager.py). The daemon's metrics are one object
per process, so each test compares before and after."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import trio
import trio.testing

from engine.api.http import JSONResponse, Request
from engine.api.router import Router, route_table
from engine.api.server import APIServer
from engine.containers.health import count_probe
from engine.containers.model import RestartPolicy, Status
from engine.events import EventBus
from engine.logs.sinks import ship_lines
from engine.metrics.catalog import METRICS
from engine.runtime.exec import ExecResult
from plugins.contracts import LoggedContainer, LogRecord
from tests.unit import test_container_manager as manager_tests
from tests.unit.test_container_manager import Daemon, Host, _daemon, _running, _settle, _until

# the container manager's fixtures: a fake runtime and its host, a running manager
host = manager_tests.host
daemon = manager_tests.daemon


async def test_restarts_are_counted_by_policy_and_reason(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    labels = {"policy": "on-failure", "reason": "exited"}
    before = METRICS.restarts.get(**labels)
    starts = METRICS.container_actions.series[("start",)].count
    c = await _running(daemon.m, RestartPolicy("on-failure", 2))
    for _ in range(3):
        await _until(lambda: c.state.status is Status.RUNNING)
        host.runtime.exit(c.id, 1)
        await _settle()
    await daemon.m.wait(c, "")
    assert METRICS.restarts.get(**labels) - before == 2
    # dockerd's `start` action counts the user's start, not the policy's restarts
    assert METRICS.container_actions.series[("start",)].count - starts == 1


async def test_turning_unhealthy_counts_the_action_taken(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    before = METRICS.health_actions.get(action="kill"), METRICS.health_actions.get(action="none")
    c = await _running(daemon.m, RestartPolicy("on-failure"), health_on_failure="kill")
    plain = await _running(daemon.m)
    daemon.m.health_failed(c)
    daemon.m.health_failed(plain)
    await _until(lambda: len(host.runtime.created_at) == 3 and c.state.status is Status.RUNNING)
    after = METRICS.health_actions.get(action="kill"), METRICS.health_actions.get(action="none")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    assert METRICS.restarts.get(policy="on-failure", reason="health") >= 1


def test_probes_count_as_dockerd_counts_them_and_failures_of_any_kind() -> None:
    before = (METRICS.health_checks.get(), METRICS.health_checks_failed.get(),
              METRICS.health_failures.get())
    count_probe(ExecResult(exit_code=0))
    count_probe(ExecResult(exit_code=1))
    count_probe(ExecResult(exit_code=-1, error="exec failed"))
    after = (METRICS.health_checks.get(), METRICS.health_checks_failed.get(),
             METRICS.health_failures.get())
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 1, 2]


async def test_a_new_daemon_counts_what_it_re_adopted(
        host: Host, autojump_clock: trio.testing.MockClock) -> None:
    before = METRICS.recovered.get(outcome="re-adopted")
    METRICS.adoption_seconds.set(-1)
    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as nursery:
            first = await _daemon(host, nursery)
            await _running(first.m)
            first.crash()
        await _daemon(host, outer)
        outer.cancel_scope.cancel()
    assert METRICS.recovered.get(outcome="re-adopted") - before == 1
    assert METRICS.adoption_seconds.get() >= 0


async def test_a_removed_containers_series_go_with_it(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    c = await _running(daemon.m)
    METRICS.log_rotations.inc(container=c.short_id)
    await daemon.m.remove(c, force=True)
    assert (c.short_id,) not in METRICS.log_rotations.values


def test_every_published_event_is_counted() -> None:
    before = METRICS.events.get()
    bus = EventBus()
    bus.publish("container", "start", "abc")
    bus.publish("image", "pull", "busybox")
    assert METRICS.events.get() - before == 2


@attrs.define
class _Sink:
    """A shipping log driver that takes every batch, or fails every one."""

    name: str
    fails: bool
    readable: bool = True
    ships: bool = True
    got: list[LogRecord] = attrs.field(factory=list)

    def validate(self, options: Mapping[str, str]) -> Mapping[str, str]:
        return options

    async def ship(self, container: LoggedContainer, records: Sequence[LogRecord]) -> None:
        if self.fails:
            raise OSError("the sink is down")
        self.got.extend(records)


async def test_shipped_and_dropped_log_lines_are_counted_per_container(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_text("".join(f"2026-01-01T00:00:0{i}.000000000+00:00 stdout F line {i}\n"
                           for i in range(3)))
    cid = "c0ffee" * 10 + "abcd"
    labels = {"container": cid[:12]}
    for sink in (_Sink("good", fails=False), _Sink("bad", fails=True)):
        counter = METRICS.log_lines_dropped if sink.fails else METRICS.log_lines_shipped
        before = counter.get(**labels, driver=sink.name)
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ship_lines, sink, LoggedContainer(cid, "web", "busybox", {}, {}),
                                   log, 0)
                while counter.get(**labels, driver=sink.name) - before < 3:  # noqa: ASYNC110
                    await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
        assert len(sink.got) == (0 if sink.fails else 3)
    METRICS.forget_container(cid)
    assert METRICS.log_lines_shipped.get(**labels, driver="good") == 0


async def test_api_latency_is_labelled_by_route_template_not_by_path(tmp_path: Path) -> None:
    router = Router()

    @router.route("GET", "/things/{id}/json")
    async def thing(req: Request, engine: object) -> JSONResponse:
        return JSONResponse({"Id": req.params["id"]})

    server = APIServer(route_table([router]), None)  # type: ignore[arg-type]
    sock = tmp_path / "api.sock"
    labels = {"method": "GET", "route": "/things/{id}/json", "status": "200"}
    unmatched = {"method": "other", "route": "unmatched", "status": "404"}
    before = [METRICS.api_requests.series.get(METRICS.api_requests.key(k)) for k in
              (labels, unmatched)]
    counts = [h.count if h else 0 for h in before]

    def ask(method: str, target: str) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(sock))
            s.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      .encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: server.serve_unix(sock, task_status=task_status))
        for target in ("/v1.50/things/abc/json", "/things/def/json"):
            answer = await trio.to_thread.run_sync(ask, "GET", target)
            assert answer.startswith(b"HTTP/1.1 200")
        answer = await trio.to_thread.run_sync(ask, "BREW", "/coffee")
        assert answer.startswith(b"HTTP/1.1 404")
        server.close()
    after = [METRICS.api_requests.series[METRICS.api_requests.key(k)].count
             for k in (labels, unmatched)]
    assert [a - b for a, b in zip(after, counts, strict=True)] == [2, 1]
