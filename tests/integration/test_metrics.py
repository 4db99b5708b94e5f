"""A real Prometheus (Debian's `prometheus`) scrapes a private moord's `--metrics-addr`, and
its own query API returns moorage's series and dockerd-named ones.

The moord runs a container that its restart policy restarts, and is itself restarted
while another container runs (so it re-adopts one). Prometheus scrapes every second; the
test polls Prometheus' `/api/v1/query` until every expected series is there with a sane
value, up to a deadline (no timing is asserted).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemon import Moord, inspect
from tests.support.registry import free_port

pytestmark = pytest.mark.needs_tools("prometheus", "promtool")

DEADLINE = 180.0

#: The one lint promtool has about the exposition: dockerd's own name for a gauge.
DOCKERD_NAMES_PROMTOOL_DISLIKES = {
    'engine_daemon_events_subscribers_total non-counter metrics should not have "_total" suffix',
}


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body


def _query(prom: str, expr: str) -> list[dict[str, object]]:
    """Prometheus' instant query: the result vector ([] while it has no such series)."""
    answer = json.loads(_get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
    assert answer["status"] == "success", answer
    result: list[dict[str, object]] = answer["data"]["result"]
    return result


def _value(sample: dict[str, object]) -> float:
    value = sample["value"]
    assert isinstance(value, list)
    return float(value[1])


def _start_prometheus(tmp_path: Path, target: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: moord\n    static_configs:\n"
        f"      - targets: ['{target}']\n")
    log = tmp_path / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}", log


def _restart_count(d: Moord, name: str) -> int:
    count = inspect(d, name)["RestartCount"]
    assert isinstance(count, int)
    return count


def test_prometheus_scrapes_moords_metrics(fresh_moord: Callable[[], Moord],
                                           tmp_path: Path) -> None:
    d = fresh_moord()
    address = f"127.0.0.1:{free_port()}"
    d.start("--metrics-addr", address)
    d.import_busybox()
    d.docker("run", "-d", "--name", "steady", "busybox", "sleep", "600")
    # moord restarts (TERM, then a new one): `steady` keeps running and is re-adopted
    d.stop()
    d.start("--metrics-addr", address)
    d.docker("run", "-d", "--name", "flaky", "--restart", "on-failure:5", "busybox",
             "sh", "-c", "sleep 0.5; exit 3")
    deadline = time.monotonic() + DEADLINE
    while _restart_count(d, "flaky") < 1:
        assert time.monotonic() < deadline, "the on-failure policy never restarted `flaky`"
        time.sleep(0.2)

    # the exposition itself passes Prometheus' own linter (but for dockerd's one odd name)
    text = _get(f"http://{address}/metrics")
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          timeout=60)
    problems = set((lint.stdout + lint.stderr).decode().strip().splitlines())
    assert problems <= DOCKERD_NAMES_PROMTOOL_DISLIKES, problems

    proc, prom, log = _start_prometheus(tmp_path, address)
    try:
        wanted = {
            # moorage's own
            'moorage_container_restarts_total{policy="on-failure",reason="exited"}':
                lambda v: v >= 1,
            'moorage_recovered_containers_total{outcome="re-adopted"}': lambda v: v >= 1,
            "moorage_adoption_duration_seconds": lambda v: 0 <= v < DEADLINE,
            'moorage_api_request_duration_seconds_count{method="POST",'
            'route="/containers/create",status="201"}': lambda v: v >= 1,
            # dockerd's names
            'engine_daemon_container_states_containers{state="running"}': lambda v: v >= 1,
            'engine_daemon_container_actions_seconds_count{action="create"}': lambda v: v >= 1,
            'engine_daemon_network_actions_seconds_count{action="allocate"}': lambda v: v >= 1,
            "engine_daemon_events_total": lambda v: v >= 4,
            'engine_daemon_engine_info{os_type="linux"}': lambda v: v == 1,
            'up{job="moord"}': lambda v: v == 1,
        }
        seen: dict[str, float] = {}
        while set(seen) != set(wanted):
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus never returned {sorted(set(wanted) - set(seen))} "
                            f"(seen: {seen})\n{log.read_text()[-3000:]}")
            for expr, sane in wanted.items():
                if expr in seen:
                    continue
                try:
                    result = _query(prom, expr)
                except OSError:
                    break  # Prometheus is still starting
                if len(result) == 1 and sane(_value(result[0])):
                    seen[expr] = _value(result[0])
            time.sleep(0.5)
        # the scrape target's labels are Prometheus' own; the series' labels are moord's
        info = _query(prom, "engine_daemon_engine_info")[0]["metric"]
        assert isinstance(info, dict)
        assert info["daemon_id"] == (d.data_root / "engine-id").read_text().strip()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_bad_or_taken_metrics_address_stops_moord_with_a_message(
        fresh_moord: Callable[[], Moord]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for address, message in ((f"127.0.0.1:{port}", f"cannot serve metrics on 127.0.0.1:{port}"),
                                 ("127.0.0.1", "expected HOST:PORT")):
            d = fresh_moord()
            with pytest.raises(RuntimeError, match="moord exited with 1") as failed:
                d.start("--metrics-addr", address)
            assert message in str(failed.value)
