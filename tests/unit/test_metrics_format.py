"""The Prometheus text exposition (0.0.4) moord writes, and the little server that serves it."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from engine.metrics.catalog import DaemonMetrics
from engine.metrics.registry import (
    CONTENT_TYPE,
    Counter,
    Gauge,
    Histogram,
    Registry,
    escape_help,
    escape_label_value,
    format_value,
)
from engine.metrics.server import answer, parse_listen_address, serve_connection
from engine.metrics.sources import EngineFacts, count_states, describe_engine, state_of


def test_label_values_escape_backslash_quote_and_newline() -> None:
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    g = Gauge("x", "h", ("path",))
    g.set(1, path='C:\\dir "q"\nnext')
    assert list(g.sample_lines()) == ['x{path="C:\\\\dir \\"q\\"\\nnext"} 1']


def test_help_escapes_backslash_and_newline_but_not_quotes() -> None:
    assert escape_help('one\\two\n"three"') == 'one\\\\two\\n"three"'


def test_values_as_prometheus_reads_them() -> None:
    assert [format_value(v) for v in (3.0, 0.25, -2.0, math.inf, -math.inf, math.nan, 1e-7)] == [
        "3", "0.25", "-2", "+Inf", "-Inf", "NaN", "1e-07"]


def test_a_histogram_has_cumulative_buckets_an_inf_bucket_a_sum_and_a_count() -> None:
    h = Histogram("op_seconds", "how long", ("action",), buckets=(0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 7.0):
        h.observe(value, action="start")
    assert list(h.lines()) == [
        "# HELP op_seconds how long",
        "# TYPE op_seconds histogram",
        'op_seconds_bucket{action="start",le="0.1"} 2',  # a bound is inclusive
        'op_seconds_bucket{action="start",le="1"} 3',
        'op_seconds_bucket{action="start",le="+Inf"} 4',
        'op_seconds_sum{action="start"} 7.65',
        'op_seconds_count{action="start"} 4',
    ]


def test_a_declared_histogram_series_exists_with_no_observations() -> None:
    h = Histogram("op_seconds", "how long", ("action",), buckets=(1.0,))
    h.declare(action="delete")
    assert list(h.sample_lines())[-2:] == ['op_seconds_sum{action="delete"} 0',
                                           'op_seconds_count{action="delete"} 0']


def test_time_observes_only_a_block_that_succeeded() -> None:
    h = Histogram("op_seconds", "how long", ("action",))
    with h.time(action="start"):
        pass
    with pytest.raises(RuntimeError), h.time(action="start"):
        raise RuntimeError("failed")
    assert h.series[("start",)].count == 1


def test_names_and_labels_are_checked_where_they_are_made() -> None:
    with pytest.raises(ValueError, match="_total"):
        Counter("restarts", "h")
    with pytest.raises(ValueError, match="invalid metric name"):
        Gauge("bad-name", "h")
    for label in ("le", "__reserved", "9lives"):
        with pytest.raises(ValueError, match="invalid label name"):
            Gauge("x", "h", (label,))
    with pytest.raises(ValueError, match="increasing"):
        Histogram("x", "h", buckets=(1.0, 0.5))
    c = Counter("x_total", "h", ("policy",))
    with pytest.raises(ValueError, match="takes labels"):
        c.inc(polcy="always")
    with pytest.raises(ValueError, match="cannot go down"):
        c.inc(-1, policy="always")


def test_a_removed_containers_series_go_and_the_others_stay() -> None:
    r = Registry()
    shipped = r.add(Counter("lines_total", "h", ("container", "driver")))
    shipped.inc(5, container="aaa", driver="syslog")
    shipped.inc(2, container="bbb", driver="syslog")
    r.remove_where(container="aaa")
    assert list(shipped.sample_lines()) == ['lines_total{container="bbb",driver="syslog"} 2']


def test_the_exposition_runs_collectors_and_ends_with_a_newline() -> None:
    r = Registry()
    g = r.add(Gauge("up_things", "things\nup"))
    r.on_collect(lambda: g.set(4))
    assert r.render() == "# HELP up_things things\\nup\n# TYPE up_things gauge\nup_things 4\n"
    with pytest.raises(ValueError, match="twice"):
        r.add(Gauge("up_things", "again"))


def test_the_daemons_families_carry_dockerds_names() -> None:
    text = DaemonMetrics().render()
    for line in ('engine_daemon_container_actions_seconds_count{action="start"} 0',
                 'engine_daemon_container_states_containers{state="paused"} 0',
                 "engine_daemon_events_total 0",
                 "engine_daemon_health_checks_total 0",
                 "engine_daemon_health_checks_failed_total 0",
                 "# TYPE engine_daemon_network_actions_seconds histogram",
                 "# TYPE moorage_container_restarts_total counter",
                 "# TYPE moorage_api_request_duration_seconds histogram"):
        assert line in text.splitlines()


def test_engine_info_and_container_states() -> None:
    metrics = DaemonMetrics()
    describe_engine(metrics, EngineFacts(version="0.1", architecture="x86_64", kernel="6.1",
                                         os="Debian GNU/Linux 12", os_version="12",
                                         daemon_id="abc"))
    text = metrics.render()
    assert ('engine_daemon_engine_info{version="0.1",commit="",architecture="x86_64",'
            'graphdriver="overlay",kernel="6.1",os="Debian GNU/Linux 12",os_type="linux",'
            'os_version="12",daemon_id="abc"} 1') in text.splitlines()
    assert metrics.engine_cpus.get() >= 1
    assert [state_of(s) for s in ("running", "paused", "restarting", "created", "exited")] == [
        "running", "paused", "stopped", "stopped", "stopped"]
    count_states(metrics, ["running", "running", "exited", "paused", "restarting"])
    assert [metrics.container_states.get(state=s) for s in ("running", "paused", "stopped")] == [
        2, 1, 2]


@pytest.mark.parametrize(("text", "host", "port"), [
    ("127.0.0.1:9323", "127.0.0.1", 9323), ("0.0.0.0:1", "0.0.0.0", 1),
    ("[::1]:9323", "::1", 9323), ("localhost:80", "localhost", 80)])
def test_listen_addresses(text: str, host: str, port: int) -> None:
    address = parse_listen_address(text)
    assert (address.host, address.port) == (host, port)
    assert str(address) == text


@pytest.mark.parametrize("text", ["9323", ":9323", "127.0.0.1:", "127.0.0.1:http",
                                  "127.0.0.1:70000", "::1:9323", "[nope]:1"])
def test_bad_listen_addresses_say_what_is_wrong(text: str) -> None:
    with pytest.raises(ValueError, match="metrics-addr"):
        parse_listen_address(text)


def test_only_get_and_head_of_metrics_are_answered() -> None:
    def render() -> str:
        return "x 1\n"

    assert answer("GET", "/metrics", render) == (200, b"x 1\n", CONTENT_TYPE)
    assert answer("GET", "/metrics?name[]=x", render)[0] == 200
    assert answer("HEAD", "/metrics", render)[0] == 200
    assert answer("POST", "/metrics", render)[0] == 405
    assert answer("GET", "/", render)[0] == 404


async def test_the_server_answers_two_requests_on_one_connection() -> None:
    client, server = trio.testing.memory_stream_pair()
    scrapes = 0

    def render() -> str:
        nonlocal scrapes
        scrapes += 1
        return f"scrapes_total {scrapes}\n"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_connection, server, render)
        received = b""
        for n in (1, 2):
            await client.send_all(b"GET /metrics HTTP/1.1\r\nHost: moord\r\n\r\n")
            while not received.endswith(f"scrapes_total {n}\n".encode()):
                received += await client.receive_some(65536)
        await client.send_all(b"HEAD /other HTTP/1.1\r\nHost: moord\r\nConnection: close\r\n\r\n")
        while chunk := await client.receive_some(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 200 ") == 2
    assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8" in received
    assert b"HTTP/1.1 404 " in received
    assert scrapes == 2
