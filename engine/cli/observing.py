"""`moor top`, `moor diff` and `moor stats`: what a container runs, changed and uses.

The numbers are the docker CLI's: `stats` computes CPU % from the sample and the
previous one the daemon sends (container CPU delta / host CPU delta * online CPUs *
100), memory without the page cache (`inactive_file`), and prints them with
go-units sizes, so scripts written against `docker stats` read ours unchanged.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import click

from engine.cli.app import App, describe, out, pass_app
from engine.cli.client import Client, ClientError, quote_path
from engine.cli.errors import CommandError
from engine.cli.formatting import (
    TemplateError,
    bytes_size,
    human_size,
    render_listing,
    tabwrite,
    truncate_id,
)

# --- top -----------------------------------------------------------------------------


def top_text(titles: Sequence[str], processes: Iterable[Sequence[str]]) -> str:
    """The `ps` table as docker prints it: tabwriter with min width 20, padding 3."""
    lines = ["\t".join(titles)]
    lines.extend("\t".join(row) for row in processes)
    return tabwrite("\n".join(lines), minwidth=20, padding=3) + "\n"


_TOP_CONTEXT = {"allow_interspersed_args": False, "ignore_unknown_options": True}


@click.command(context_settings=_TOP_CONTEXT)
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED, metavar="[ps OPTIONS]")
@pass_app
def top(app: App, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    params = {"ps_args": " ".join(ps_args)} if ps_args else None
    result = app.client.get_json(f"/containers/{quote_path(container)}/top", params) or {}
    out(top_text(result.get("Titles") or [], result.get("Processes") or []))


# --- diff ----------------------------------------------------------------------------

_CHANGE_KINDS = {0: "C", 1: "A", 2: "D"}


def diff_text(changes: Iterable[Mapping[str, Any]]) -> str:
    """`{{.Type}} {{.Path}}` per change: C(hanged), A(dded), D(eleted)."""
    return "".join(f"{_CHANGE_KINDS.get(int(c.get('Kind') or 0), '?')} {c.get('Path', '')}\n"
                   for c in changes)


@click.command()
@click.argument("container")
@pass_app
def diff(app: App, container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    changes = app.client.get_json(f"/containers/{quote_path(container)}/changes") or []
    out(diff_text(changes))


# --- stats: the arithmetic -------------------------------------------------------------

STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}"
               "\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
STATS_HEADERS = {"Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID",
                 "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                 "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
_NO_VALUE = "--"
#: docker shows a container's row as `--` when no sample came for this long.
STALE_AFTER = 2.0


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def cpu_percent(precpu: Mapping[str, Any], cpu: Mapping[str, Any]) -> float:
    """The container's share of the host's CPU time between two samples, * online CPUs.

    cgroup v1 and v2 samples look the same here; without `online_cpus` the number of
    per-CPU counters stands in (old daemons), as docker does.
    """
    usage = cpu.get("cpu_usage") or {}
    pre_usage = precpu.get("cpu_usage") or {}
    cpu_delta = _number(usage.get("total_usage")) - _number(pre_usage.get("total_usage"))
    system_delta = _number(cpu.get("system_cpu_usage")) - _number(precpu.get("system_cpu_usage"))
    online = _number(cpu.get("online_cpus")) or float(len(usage.get("percpu_usage") or []))
    if system_delta > 0.0 and cpu_delta > 0.0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_usage(memory: Mapping[str, Any]) -> float:
    """Usage minus the reclaimable page cache: `total_inactive_file` (v1), `inactive_file` (v2)."""
    usage = _number(memory.get("usage"))
    stats = memory.get("stats") or {}
    if "total_inactive_file" in stats and _number(stats["total_inactive_file"]) < usage:
        return usage - _number(stats["total_inactive_file"])
    inactive = _number(stats.get("inactive_file"))
    if inactive < usage:
        return usage - inactive
    return usage


def memory_percent(limit: float, used: float) -> float:
    return used / limit * 100.0 if limit else 0.0


def block_io(blkio: Mapping[str, Any]) -> tuple[float, float]:
    """Bytes read and written, summed over devices (`op` starting with r or w)."""
    read = write = 0.0
    for entry in blkio.get("io_service_bytes_recursive") or []:
        op = str(entry.get("op") or "")[:1].lower()
        if op == "r":
            read += _number(entry.get("value"))
        elif op == "w":
            write += _number(entry.get("value"))
    return read, write


def network_io(networks: Mapping[str, Any] | None) -> tuple[float, float]:
    """Bytes received and sent, summed over the container's interfaces."""
    rx = tx = 0.0
    for counters in (networks or {}).values():
        rx += _number(counters.get("rx_bytes"))
        tx += _number(counters.get("tx_bytes"))
    return rx, tx


@attrs.frozen
class StatsEntry:
    """One container's row, as numbers; `invalid` rows print `--`."""

    container: str
    name: str = ""
    id: str = ""
    cpu_percentage: float = 0.0
    memory: float = 0.0
    memory_limit: float = 0.0
    memory_percentage: float = 0.0
    network_rx: float = 0.0
    network_tx: float = 0.0
    block_read: float = 0.0
    block_write: float = 0.0
    pids_current: int = 0
    invalid: bool = False


def entry_from_stats(container: str, data: Mapping[str, Any]) -> StatsEntry:
    """A row from one `/containers/{id}/stats` object."""
    memory = data.get("memory_stats") or {}
    used = memory_usage(memory)
    limit = _number(memory.get("limit"))
    rx, tx = network_io(data.get("networks"))
    read, write = block_io(data.get("blkio_stats") or {})
    return StatsEntry(
        container=container, name=str(data.get("name") or ""), id=str(data.get("id") or ""),
        cpu_percentage=cpu_percent(data.get("precpu_stats") or {}, data.get("cpu_stats") or {}),
        memory=used, memory_limit=limit, memory_percentage=memory_percent(limit, used),
        network_rx=rx, network_tx=tx, block_read=read, block_write=write,
        pids_current=int(_number((data.get("pids_stats") or {}).get("current"))))


def format_percentage(value: float) -> str:
    return f"{value:.2f}%"


@attrs.frozen
class StatsRow:
    """The fields `--format` templates see (docker's statsContext)."""

    entry: StatsEntry
    trunc: bool = True

    def field(self, name: str) -> Any:
        getter = getattr(self, f"_f_{name}", None)
        if getter is None:
            raise TemplateError(f"can't evaluate field {name} in type *container.statsContext")
        return getter()

    def as_dict(self) -> dict[str, Any]:
        return {name: self.field(name) for name in sorted(STATS_HEADERS)}

    def _f_Container(self) -> str:
        return self.entry.container

    def _f_Name(self) -> str:
        return self.entry.name.removeprefix("/") or _NO_VALUE

    def _f_ID(self) -> str:
        return truncate_id(self.entry.id) if self.trunc else self.entry.id

    def _f_CPUPerc(self) -> str:
        return _NO_VALUE if self.entry.invalid else format_percentage(self.entry.cpu_percentage)

    def _f_MemUsage(self) -> str:
        if self.entry.invalid:
            return "-- / --"
        return f"{bytes_size(self.entry.memory)} / {bytes_size(self.entry.memory_limit)}"

    def _f_MemPerc(self) -> str:
        return _NO_VALUE if self.entry.invalid else format_percentage(self.entry.memory_percentage)

    def _f_NetIO(self) -> str:
        if self.entry.invalid:
            return _NO_VALUE
        return f"{human_size(self.entry.network_rx, 3)} / {human_size(self.entry.network_tx, 3)}"

    def _f_BlockIO(self) -> str:
        if self.entry.invalid:
            return _NO_VALUE
        return f"{human_size(self.entry.block_read, 3)} / {human_size(self.entry.block_write, 3)}"

    def _f_PIDs(self) -> str:
        return _NO_VALUE if self.entry.invalid else str(self.entry.pids_current)


def render_stats(fmt: str | None, entries: Sequence[StatsEntry], trunc: bool = True) -> str:
    """The rows through `--format` (table by default), as `docker stats` prints them."""
    rows = [StatsRow(e, trunc) for e in entries]
    try:
        return render_listing(fmt, rows, STATS_TABLE, STATS_HEADERS)
    except TemplateError as exc:
        raise CommandError(f"failed to execute template: {exc}") from None


# --- stats: collecting -----------------------------------------------------------------

def stats_objects(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The JSON objects of a stats response, one per line."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            if raw.strip():
                yield json.loads(raw)
    if pending.strip():
        yield json.loads(pending)


@attrs.define(eq=False)
class _Watched:
    entry: StatsEntry
    error: str = ""
    first: bool = False  # a sample (or a failure) arrived
    deadline: float | None = None  # when waiting for the first sample gives up
    updated: float = 0.0


@attrs.define(eq=False)
class StatsBoard:
    """The containers being watched, written by one thread each, read by the screen."""

    stream: bool
    watched: dict[str, _Watched] = attrs.field(factory=dict)
    changed: threading.Condition = attrs.field(factory=threading.Condition)

    def add(self, key: str) -> bool:
        with self.changed:
            if key in self.watched:
                return False
            self.watched[key] = _Watched(StatsEntry(key))
            return True

    def remove(self, key: str) -> None:
        with self.changed:
            self.watched.pop(key, None)
            self.changed.notify_all()

    def _update(self, key: str, **changes: Any) -> None:
        with self.changed:
            watched = self.watched.get(key)
            if watched is not None:
                for name, value in changes.items():
                    setattr(watched, name, value)
                self.changed.notify_all()

    def started(self, key: str) -> None:
        """The daemon answered: from now the first sample has `STALE_AFTER` to come."""
        self._update(key, deadline=time.monotonic() + STALE_AFTER)

    def sample(self, key: str, data: Mapping[str, Any]) -> None:
        self._update(key, entry=entry_from_stats(key, data), error="", first=True,
                     updated=time.monotonic())

    def failed(self, key: str, message: str) -> None:
        with self.changed:
            watched = self.watched.get(key)
            if watched is not None:
                watched.entry = attrs.evolve(watched.entry, invalid=True)
                watched.error = message
                watched.first = True
                self.changed.notify_all()

    def wait_first(self) -> None:
        """Until every container has a first sample, a failure, or ran out of time."""
        with self.changed:
            while True:
                now = time.monotonic()
                waiting = [w for w in self.watched.values() if not w.first]
                for w in waiting:
                    if w.deadline is not None and now >= w.deadline:
                        w.entry = StatsEntry(w.entry.container, invalid=True)
                        w.error = "timeout waiting for stats"
                        w.first = True
                if all(w.first for w in self.watched.values()):
                    return
                deadlines = [w.deadline for w in waiting if w.deadline is not None]
                self.changed.wait(max(0.01, min(deadlines) - now) if deadlines else 0.5)

    def errors(self) -> list[str]:
        with self.changed:
            return [w.error for w in self.watched.values() if w.error]

    def snapshot(self) -> list[StatsEntry]:
        """The rows now; a streamed row with no sample for a while shows `--`."""
        now = time.monotonic()
        with self.changed:
            rows = []
            for w in self.watched.values():
                stale = self.stream and w.first and not w.error and now - w.updated > STALE_AFTER
                rows.append(StatsEntry(w.entry.container, invalid=True) if stale else w.entry)
            return rows


def collect(client: Client, board: StatsBoard, key: str) -> None:
    """Read one container's stats into the board until the stream (or the one sample) ends."""
    params = {"stream": board.stream}
    try:
        with client.call("GET", f"/containers/{quote_path(key)}/stats", params) as response:
            board.started(key)
            for data in stats_objects(response.iter_body()):
                board.sample(key, data)
                if not board.stream:
                    return
    except ClientError as exc:
        board.failed(key, describe(exc))
        return
    except ValueError as exc:
        board.failed(key, f"error decoding stats: {exc}")
        return
    board.failed(key, "")  # the stream ended: the container stopped


def _start(client: Client, board: StatsBoard, key: str) -> None:
    """Watch `key` in a thread of its own, unless it is watched already."""
    if board.add(key):
        threading.Thread(target=collect, args=(client, board, key), daemon=True).start()


def _watch_events(client: Client, board: StatsBoard, all_: bool) -> None:
    """`docker stats` without names follows starts (creates with -a) and removals."""
    adds = {"start", "create"} if all_ else {"start"}
    removes = {"destroy"} if all_ else {"destroy", "die"}
    filters = json.dumps({"type": ["container"]})
    try:
        with client.call("GET", "/events", {"filters": filters}) as response:
            for event in stats_objects(response.iter_body()):
                actor = (event.get("Actor") or {}).get("ID") or event.get("id") or ""
                action = str(event.get("Action") or event.get("status") or "")
                if not actor:
                    continue
                if action in adds:
                    _start(client, board, actor)
                elif action in removes:
                    board.remove(actor)
    except (ClientError, ValueError):
        return


def _frame(text: str) -> str:
    """Cursor home, each line erased to its end, the rest of the screen cleared."""
    lines = text.split("\n")
    return "\033[H" + "".join(line + "\033[K\n" for line in lines) + "\033[J"


def _show_live(board: StatsBoard, fmt: str | None, trunc: bool, show_all: bool) -> None:
    while True:
        time.sleep(0.5)
        entries = board.snapshot()
        if not entries and not show_all:
            out("\033[H\033[J")
            return
        out(_frame(render_stats(fmt, entries, trunc)))
        sys.stdout.flush()


@click.command()
@click.option("-a", "--all", "all_", is_flag=True,
              help="Show all containers (default shows just running)")
@click.option("--format", "fmt", metavar="string",
              help="Format output using a custom template: 'table', 'table TEMPLATE', "
                   "'json', or a Go template")
@click.option("--no-stream", is_flag=True,
              help="Disable streaming stats and only pull the first result")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output")
@click.argument("containers", nargs=-1, metavar="[CONTAINER...]")
@pass_app
def stats(app: App, all_: bool, fmt: str | None, no_stream: bool, no_trunc: bool,
          containers: tuple[str, ...]) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    client = app.client
    board = StatsBoard(stream=not no_stream)
    show_all = not containers
    if show_all:
        if not no_stream:
            threading.Thread(target=_watch_events, args=(client, board, all_),
                             daemon=True).start()
        listed = client.get_json("/containers/json", {"all": all_ or None}) or []
        for listed_container in listed:
            _start(client, board, str(listed_container.get("Id") or ""))
    else:
        for name in containers:
            _start(client, board, name)
    board.wait_first()
    if not show_all:
        failures = board.errors()
        if failures:
            raise CommandError("\n".join(failures))
    if no_stream:
        entries = board.snapshot()
        if entries:
            out(render_stats(fmt, entries, not no_trunc))
        return
    _show_live(board, fmt, not no_trunc, show_all)


__all__ = [
    "STATS_HEADERS",
    "STATS_TABLE",
    "StatsBoard",
    "StatsEntry",
    "StatsRow",
    "block_io",
    "cpu_percent",
    "diff",
    "diff_text",
    "entry_from_stats",
    "memory_percent",
    "memory_usage",
    "network_io",
    "render_stats",
    "stats",
    "stats_objects",
    "top",
    "top_text",
]
