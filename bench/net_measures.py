"""Published ports (issue 5): throughput and request latency through `-p`, against direct.

Run through run_bench.py (`--net yes`, the default, adds them; `--net only` runs nothing
else), so the engines are brought up, given busybox and torn down like for the other
measures. Each engine runs one server container:

    docker run -d -p 127.0.0.1::80 [-p <host address>::80] busybox sh -c \
        'dd if=/dev/zero of=/www/big bs=1M count=100; <100 bytes> > /www/small; exec httpd -f -p 80 -h /www'

on its default network. Both files live in the container's writable layer, so removing the
container (always, in a `finally`) removes them. The host address is the IPv4 address of
the interface that holds the default route (nothing is sent there: it is one of this
host's own addresses); without one, only 127.0.0.1 is published.

From the host, for every route to the server — straight to the container's address on
port 80 ("direct"), the published 127.0.0.1 port, the published host-address port — the
client is curl (C, a 16 KiB receive loop writing to /dev/null; a Python `recv_into`
client with a 4 MiB buffer gave the same figures by hand, so curl is not the bottleneck):

1. **throughput**: `curl -o /dev/null` of the 100 MiB file, MB/s (10^6 bytes) from curl's
   own size and total time (connect included), several fetches per route;
2. **request latency**: sequential GETs of the 100-byte file from one curl process, each on
   a new TCP connection (busybox httpd speaks HTTP/1.0 and closes; curl's `num_connects`
   confirms it), curl's `time_total` per request: median and p99 (nearest rank).

Who forwards a published port is observed, not assumed: the process listening on the
host port (`ss -ltnp`: docker-proxy for dockerd, conmon holding Podman's, nobody for
moord, whose reservation socket never listens) and the CPU time that process and the
daemon's process tree spend during the big fetches. A listener that spends CPU is a
user-space proxy; otherwise the kernel's DNAT carries the bytes.

Engines take turns within each round, the first engine rotating as in
`measures.round_robin`, and each engine's routes follow each other, the first rotating too.
Traffic goes only to loopback, this host's own address and the benchmark's own containers.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import report
from bench.engines import Engine, EngineError
from bench.measures import progress, rotated

BIG_BYTES = 100 * 1024 * 1024
SMALL_BYTES = 100
SERVE_SCRIPT = ("mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count=100 2>/dev/null && "
                f"head -c {SMALL_BYTES} /dev/zero | tr '\\0' x > /www/small && exec httpd -f -p 80 -h /www")
READY_TIMEOUT = 60.0
FETCH_TIMEOUT = 120.0
LATENCY_CHUNK = 50  # GETs per curl process; chunks of every route and engine are interleaved
TARGET = 0.9  # published ÷ direct throughput the issue asks for
PROXY_CPU_PER_FETCH = 0.01  # s: a listener spending this per 100 MiB is carrying the bytes
TICKS = os.sysconf("SC_CLK_TCK")
ROUTE_KEYS = ("direct", "loopback", "host")


class NetError(Exception):
    """A fetch or GET that did not return what the server holds."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """run_bench.py's options for these measures."""
    parser.add_argument("--net", choices=("no", "yes", "only"), default="yes",
                        help="published-port throughput and latency against direct "
                             "(only: nothing else)")
    parser.add_argument("--net-fetches", type=int, default=7,
                        help="100 MiB fetches per engine and route (at least 3)")
    parser.add_argument("--net-requests", type=int, default=200,
                        help="sequential GETs of a 100-byte file per engine and route")


# --- the host side --------------------------------------------------------------------------------


def curl_binary() -> str | None:
    return shutil.which("curl")


def curl_version(curl: str) -> str:
    out = subprocess.run([curl, "--version"], capture_output=True, text=True, check=False).stdout
    return " ".join(out.split()[:2]) if out else curl


def host_address() -> str | None:
    """The IPv4 address of the interface with the default route: a non-loopback address of this
    host, which a client on the host reaches without anything leaving the machine."""
    routes = _ip_json("route", "show", "default")
    dev = next((r.get("dev") for r in routes if r.get("dev")), None)
    if dev is None:
        return None
    for link in _ip_json("-4", "addr", "show", "dev", str(dev), "scope", "global"):
        for addr in link.get("addr_info", []):
            if addr.get("family") == "inet" and addr.get("local"):
                return str(addr["local"])
    return None


def _ip_json(*args: str) -> list[dict[str, Any]]:
    result = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=False)
    with contextlib.suppress(ValueError):
        data = json.loads(result.stdout or "[]")
        return data if isinstance(data, list) else []
    return []


def listener(host: str, port: int) -> tuple[int, str] | None:
    """(pid, comm) of the process listening on host:port (or on every address), if any."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True,
                         check=False).stdout
    for line in out.splitlines():
        fields = line.split()
        local = fields[3] if len(fields) > 3 else ""
        if local.rsplit(":", 1)[0] not in (host, "0.0.0.0", "*", "[::]"):
            continue
        found = re.search(r'\("([^"]+)",pid=(\d+)', line)
        if found:
            return int(found.group(2)), found.group(1)
    return None


def cpu_seconds(pids: set[int]) -> float:
    """utime + stime of the processes still alive (10 ms resolution)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


# --- one engine's server ------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One way from the host to the server: direct, or a published port on some address."""

    key: str  # one of ROUTE_KEYS
    host: str
    port: int

    @property
    def label(self) -> str:
        return "direct" if self.key == "direct" else f"-p {self.host}"

    def url(self, name: str) -> str:
        return f"http://{self.host}:{self.port}/{name}"


@dataclass
class RouteSamples:
    """What one route gave: MB/s per fetch, ms per GET, engine-side CPU during the fetches."""

    mbps: list[float] = field(default_factory=list)
    by_round: list[float | None] = field(default_factory=list)  # MB/s, None for a failed fetch
    latency_ms: list[float] = field(default_factory=list)
    engine_cpu_s: list[float] = field(default_factory=list)
    listener_cpu_s: list[float] = field(default_factory=list)
    listener: str | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class Server:
    """An engine's httpd container and the routes to it."""

    engine: Engine
    cid: str = ""
    container_ip: str = ""
    routes: list[Route] = field(default_factory=list)
    samples: dict[str, RouteSamples] = field(default_factory=dict)
    error: str | None = None


def start_server(engine: Engine, host_ip: str | None) -> Server:
    """Run the httpd container with its published ports and wait until it serves."""
    server = Server(engine)
    publish = ["-p", "127.0.0.1::80", *(["-p", f"{host_ip}::80"] if host_ip else [])]
    try:
        server.cid = engine.docker("run", "-d", *publish, *engine.run_args, "busybox", "sh", "-c",
                                   SERVE_SCRIPT).stdout.strip()
        inspected = json.loads(engine.docker("inspect", server.cid).stdout)[0]
        server.container_ip, server.routes = routes_of(inspected, host_ip)
        for route in server.routes:
            wait_ready(route)
    except (EngineError, NetError, subprocess.TimeoutExpired, ValueError, KeyError, IndexError) as e:
        server.error = f"server: {e}"
        return server
    server.samples = {r.key: RouteSamples() for r in server.routes}
    return server


def routes_of(inspected: dict[str, Any], host_ip: str | None) -> tuple[str, list[Route]]:
    """The container's address and its routes, from `docker inspect` (engines list the
    bindings in different orders, so they are matched by HostIp)."""
    settings = inspected["NetworkSettings"]
    ip = settings.get("IPAddress") or next(
        (n["IPAddress"] for n in (settings.get("Networks") or {}).values() if n.get("IPAddress")), "")
    if not ip:
        raise NetError("the container has no IPv4 address")
    routes = [Route("direct", ip, 80)]
    bindings = (settings.get("Ports") or {}).get("80/tcp") or []
    for key, want in (("loopback", "127.0.0.1"), ("host", host_ip)):
        port = next((int(b["HostPort"]) for b in bindings if want and b.get("HostIp") == want), None)
        if want and port is None:
            raise NetError(f"no binding for {want} in {bindings}")
        if want and port is not None:
            routes.append(Route(key, want, port))
    return ip, routes


def wait_ready(route: Route) -> None:
    """Until GET /small answers 200 on this route: dd has finished and httpd listens."""
    deadline = time.monotonic() + READY_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(route.host, route.port, timeout=2)
        try:
            conn.request("GET", "/small")
            response = conn.getresponse()
            if response.status == 200 and len(response.read()) == SMALL_BYTES:
                return
            last = f"HTTP {response.status}"
        except OSError as e:
            last = str(e)
        finally:
            conn.close()
        time.sleep(0.1)
    raise NetError(f"{route.url('small')} not serving within {READY_TIMEOUT:.0f} s ({last})")


def remove(server: Server) -> None:
    """The container goes, and its 100 MiB file with its writable layer."""
    if server.cid:
        with contextlib.suppress(EngineError, subprocess.TimeoutExpired):
            server.engine.docker("rm", "-f", server.cid, timeout=120)


# --- the client ---------------------------------------------------------------------------------


def curl(curl_bin: str, args: list[str]) -> str:
    result = subprocess.run([curl_bin, "-s", "--max-time", str(FETCH_TIMEOUT), *args],
                            capture_output=True, text=True, timeout=FETCH_TIMEOUT * 2, check=False)
    if result.returncode != 0:
        raise NetError(f"curl exit {result.returncode}: {result.stderr.strip()[-200:]}")
    return result.stdout


def fetch_big(curl_bin: str, route: Route) -> float:
    """MB/s (10^6 bytes) of one fetch of the 100 MiB file, connect included."""
    out = curl(curl_bin, ["-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}",
                          route.url("big")])
    code, size, seconds = out.split()
    if code != "200" or int(size) != BIG_BYTES:
        raise NetError(f"{route.url('big')}: HTTP {code}, {size} bytes")
    return BIG_BYTES / float(seconds) / 1e6


def get_small(curl_bin: str, route: Route, count: int) -> list[float]:
    """ms per GET of `count` sequential GETs from one curl process, each a new connection."""
    args = ["-w", "%{http_code} %{size_download} %{num_connects} %{time_total}\n"]
    for _ in range(count):
        args += ["-o", "/dev/null", route.url("small")]
    times = []
    for line in curl(curl_bin, args).splitlines():
        code, size, connects, seconds = line.split()
        if code != "200" or int(size) != SMALL_BYTES or connects != "1":
            raise NetError(f"{route.url('small')}: HTTP {code}, {size} bytes, {connects} connects")
        times.append(float(seconds) * 1000)
    if len(times) != count:
        raise NetError(f"{route.url('small')}: {len(times)} answers to {count} GETs")
    return times


def engine_pids(server: Server, holder: tuple[int, str] | None) -> set[int]:
    """The daemon, its process tree (docker-proxy, containerd) and the port's listener."""
    pids = set(server.engine.daemon_pids())
    if holder:
        pids.add(holder[0])
    return pids


def one_fetch(curl_bin: str, server: Server, route: Route) -> None:
    """One big fetch, with the CPU the engine side spent meanwhile for published routes."""
    samples = server.samples[route.key]
    holder = None if route.key == "direct" else listener(route.host, route.port)
    if holder:
        samples.listener = holder[1]
    pids = engine_pids(server, holder) if route.key != "direct" else set()
    before, held_before = cpu_seconds(pids), cpu_seconds({holder[0]} if holder else set())
    try:
        mbps = fetch_big(curl_bin, route)
    except (NetError, subprocess.TimeoutExpired) as e:
        samples.errors.append(f"fetch: {e}")
        samples.by_round.append(None)
        return
    samples.mbps.append(mbps)
    samples.by_round.append(mbps)
    if route.key != "direct":
        samples.engine_cpu_s.append(cpu_seconds(pids) - before)
        samples.listener_cpu_s.append(cpu_seconds({holder[0]} if holder else set()) - held_before)


def measure_throughput(curl_bin: str, servers: list[Server], fetches: int) -> None:
    for i in range(fetches):
        progress(f"published ports: 100 MiB fetches, round {i + 1}/{fetches}")
        for server in _rotated_servers(servers, i):
            for route in _rotated_routes(server.routes, i):
                one_fetch(curl_bin, server, route)


def measure_latency(curl_bin: str, servers: list[Server], requests: int) -> None:
    rounds = math.ceil(requests / LATENCY_CHUNK)
    for i in range(rounds):
        count = min(LATENCY_CHUNK, requests - i * LATENCY_CHUNK)
        progress(f"published ports: GETs, round {i + 1}/{rounds}")
        for server in _rotated_servers(servers, i):
            for route in _rotated_routes(server.routes, i):
                try:
                    server.samples[route.key].latency_ms += get_small(curl_bin, route, count)
                except (NetError, subprocess.TimeoutExpired, ValueError) as e:
                    server.samples[route.key].errors.append(f"GETs: {e}")


def _rotated_routes(routes: list[Route], turn: int) -> list[Route]:
    """A different route first each round: none always follows another engine's turn."""
    k = turn % len(routes)
    return routes[k:] + routes[:k]


def _rotated_servers(servers: list[Server], turn: int) -> list[Server]:
    by_engine = {s.engine.name: s for s in servers}
    return [by_engine[e.name] for e in rotated([s.engine for s in servers], turn)]


# --- the whole thing ----------------------------------------------------------------------------


def run(engines: list[Engine], args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Both measures on every engine; the figures go to result["net"]."""
    curl_bin = curl_binary()
    if curl_bin is None:
        result["net"] = {"skipped": "curl is not installed (apt-get install curl)"}
        return
    host_ip = host_address()
    servers: list[Server] = []
    try:
        for engine in engines:
            progress(f"published ports: starting the httpd container on {engine.name}")
            servers.append(start_server(engine, host_ip))
        serving = [s for s in servers if s.error is None]
        if serving:
            measure_throughput(curl_bin, serving, args.net_fetches)
            measure_latency(curl_bin, serving, args.net_requests)
    finally:
        for server in servers:
            remove(server)
    if args.net == "only":
        result["notes"].append("--net only: the run, detached and supervision measures were not taken.")
    result["net"] = to_json(servers, curl_version(curl_bin), host_ip, args)


def nearest_rank(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else round(a / b, 3)


def route_json(route: Route, s: RouteSamples) -> dict[str, Any]:
    listener_cpu = _median(s.listener_cpu_s)
    return {
        "label": route.label, "host": route.host, "port": route.port,
        "mbps": {"median": _round(_median(s.mbps)), "min": _round(min(s.mbps, default=None)),
                 "max": _round(max(s.mbps, default=None)), "samples": [round(x) for x in s.mbps]},
        "latency_ms": {"n": len(s.latency_ms), "median": _round(_median(s.latency_ms), 3),
                       "p99": _round(nearest_rank(s.latency_ms, 0.99), 3),
                       "max": _round(max(s.latency_ms, default=None), 3),
                       "samples": [round(x, 3) for x in s.latency_ms]},
        "listener": s.listener,
        "listener_cpu_s_per_fetch": _round(listener_cpu, 3),
        "engine_cpu_s_per_fetch": _round(_median(s.engine_cpu_s), 3),
        "forwarding": forwarding(route, s.listener, listener_cpu),
        "errors": s.errors,
    }


def forwarding(route: Route, holder: str | None, cpu_per_fetch: float | None) -> str:
    """What carried the bytes, from what was observed (see the module's docstring)."""
    if route.key == "direct":
        return "bridge, no NAT"
    if holder and cpu_per_fetch is not None and cpu_per_fetch >= PROXY_CPU_PER_FETCH:
        return f"user-space proxy ({holder})"
    if holder:
        return f"kernel DNAT ({holder} holds the port, idle)"
    return "kernel DNAT (no process listens on the port)"


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float | None]:
    """Route a over route b: MB/s, median and p99 latency."""
    return {"mbps": _div(a["mbps"]["median"], b["mbps"]["median"]),
            "latency_median": _div(a["latency_ms"]["median"], b["latency_ms"]["median"]),
            "latency_p99": _div(a["latency_ms"]["p99"], b["latency_ms"]["p99"])}


def paired(published: RouteSamples, direct: RouteSamples) -> dict[str, Any]:
    """Published ÷ direct MB/s round by round: the two fetches of a round are next to each
    other in time, so load that comes and goes between rounds cancels out; the quartiles show
    how far single rounds scatter."""
    ratios = sorted(p / d for p, d in zip(published.by_round, direct.by_round, strict=False) if p and d)
    if not ratios:
        return {"n": 0, "median": None, "q1": None, "q3": None}
    return {"n": len(ratios), "median": round(statistics.median(ratios), 3),
            "q1": round(nearest_rank(ratios, 0.25) or 0, 3), "q3": round(nearest_rank(ratios, 0.75) or 0, 3)}


def server_json(server: Server) -> dict[str, Any]:
    routes = {r.key: route_json(r, server.samples[r.key]) for r in server.routes}
    direct = routes.get("direct")
    for key, r in routes.items():
        if key != "direct" and direct:
            r["vs_direct"] = {**compare(r, direct),
                              "mbps_paired": paired(server.samples[key], server.samples["direct"])}
    return {"container_ip": server.container_ip, "error": server.error, "routes": routes}


def to_json(servers: list[Server], client: str, host_ip: str | None,
            args: argparse.Namespace) -> dict[str, Any]:
    engines = {s.engine.name: server_json(s) for s in servers}
    return {"client": client, "host_address": host_ip, "fetches": args.net_fetches,
            "requests": args.net_requests, "big_bytes": BIG_BYTES, "small_bytes": SMALL_BYTES,
            "script": SERVE_SCRIPT, "engines": engines, "ratios": peer_ratios(engines)}


def peer_ratios(engines: dict[str, Any]) -> dict[str, dict[str, dict[str, float | None]]]:
    """moord ÷ peer per route: throughput (above 1: moord faster) and latency (below 1: moord faster)."""
    moord = engines.get("moord", {}).get("routes", {})
    ratios: dict[str, dict[str, dict[str, float | None]]] = {}
    for name, data in engines.items():
        if name == "moord":
            continue
        ratios[f"moord/{name}"] = {key: compare(moord[key], r) for key, r in data["routes"].items()
                                   if key in moord}
    return ratios


# --- the report ---------------------------------------------------------------------------------


def markdown(result: dict[str, Any]) -> str:
    """The published-port section of the report (empty if it did not run)."""
    net = result.get("net")
    if not net:
        return ""
    lines = ["### Published ports", ""]
    if net.get("skipped"):
        return "\n".join([*lines, f"Skipped: {net['skipped']}.", ""]) + "\n"
    lines += _intro(net)
    lines += _route_table(net)
    lines += _ratio_table(net)
    lines += _errors(net)
    return "\n".join(lines) + "\n"


def _intro(net: dict[str, Any]) -> list[str]:
    host = net["host_address"] or "none (no default route: 127.0.0.1 only)"
    return [f"One busybox `httpd -f -p 80 -h /www` container per engine on its default network, "
            f"published with `-p 127.0.0.1::80` and `-p <host address>::80` (host address: {host}); "
            f"client {net['client']} on the host. Throughput: {net['fetches']} fetches of the "
            f"{net['big_bytes'] // 2**20} MiB file per route, MB/s (10^6 B, connect included), median "
            f"(min{report.DASH}max). Latency: {net['requests']} sequential GETs of {net['small_bytes']} "
            "bytes, each a new TCP connection, curl's time_total, ms. ÷ direct: published route over "
            "the same engine's direct route; for MB/s the median of the per-round ratios (the two "
            "fetches of a round are adjacent) with their quartiles, target ≥ "
            f"{TARGET}{report.TIMES}; for latency the ratio of the medians and of the p99s. "
            "Forwarding and engine CPU (daemon tree + the port's listener, per 100 MiB fetch) are "
            "observed during the fetches.", ""]


def _route_table(net: dict[str, Any]) -> list[str]:
    lines = ["| engine | route | MB/s | ÷ direct | latency median ms | p99 ms | ÷ direct (median, p99) "
             "| forwarding | engine CPU s / 100 MiB |", "|---|---|---|---|---|---|---|---|---|"]
    for name, data in net["engines"].items():
        if data["error"]:
            lines.append(f"| {name} | — | failed: …{_cell(data['error'][-300:])} | | | | | | |")
            continue
        lines += [_route_row(name, key, r) for key, r in data["routes"].items()]
    return [*lines, ""]


def _route_row(name: str, key: str, r: dict[str, Any]) -> str:
    route = f"direct {r['host']}:80" if key == "direct" else f"`{r['label']}` :{r['port']}"
    vs = r.get("vs_direct", {})
    mbps, latency = r["mbps"], r["latency_ms"]
    latency_vs = (f"{report.fmt_ratio(vs.get('latency_median'))}, {report.fmt_ratio(vs.get('latency_p99'))}"
                  if vs else "—")
    cpu = r["engine_cpu_s_per_fetch"]
    cells = [name, route, f"{_num(mbps['median'])} ({_num(mbps['min'])}{report.DASH}{_num(mbps['max'])})",
             _paired(vs.get("mbps_paired")), _ms(latency["median"]), _ms(latency["p99"]), latency_vs,
             r["forwarding"], "—" if cpu is None else f"{cpu:.2f}"]
    return "| " + " | ".join(cells) + " |"


def _ratio_table(net: dict[str, Any]) -> list[str]:
    if not net["ratios"]:
        return []
    lines = ["moord ÷ peer, same route: throughput (above 1: moord faster), latency median and p99 "
             "(below 1: moord faster).", "",
             "| route | " + " | ".join(net["ratios"]) + " |",
             "|---|" + "---|" * len(net["ratios"])]
    for key in ROUTE_KEYS:
        cells = []
        for per_route in net["ratios"].values():
            r = per_route.get(key)
            cells.append("—" if r is None else
                         f"{report.fmt_ratio(r['mbps'])} MB/s; {report.fmt_ratio(r['latency_median'])}, "
                         f"{report.fmt_ratio(r['latency_p99'])} latency")
        if any(c != "—" for c in cells):
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _errors(net: dict[str, Any]) -> list[str]:
    lines = []
    for name, data in net["engines"].items():
        for key, r in data["routes"].items():
            if r["errors"]:
                first = _cell(r["errors"][0][-300:])
                lines.append(f"- {name}, {key}: {len(r['errors'])} failed; first: {first}")
    return [*lines, ""] if lines else []


def _cell(text: str) -> str:
    """An error message fit for one markdown table cell or line."""
    return " ".join(text.split()).replace("|", "\\|")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _paired(ratio: dict[str, Any] | None) -> str:
    """Median of the per-round ratios, their quartiles, and whether the median meets the target."""
    if not ratio or ratio["median"] is None:
        return "—"
    text = f"{report.fmt_ratio(ratio['median'])} ({ratio['q1']:.2f}{report.DASH}{ratio['q3']:.2f})"
    return text + (" below target" if ratio["median"] < TARGET else "")
