"""The report: markdown for people, rendered from the same dict that is written as JSON.

Ratios are moord's figure divided by the peer's (0.31, printed with a multiplication sign,
means moord takes 31 % of the peer's time or memory). They describe one run on one machine
under whatever load it had; the load averages are printed beside them for that reason.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

PEERS = ("dockerd", "podman")
TIMES = "\N{MULTIPLICATION SIGN}"
DASH = "\N{EN DASH}"


def ratio(moord: float | None, peer: float | None) -> float | None:
    if moord is None or peer is None or peer <= 0:
        return None
    return round(moord / peer, 3)


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}{TIMES}"


def fmt_ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def fmt_mb(kb: float | None) -> str:
    return "—" if kb is None else f"{kb / 1024:.1f}" if kb >= 1024 else f"{kb / 1024:.2f}"


def fmt_load(load: list[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def markdown(result: dict[str, Any]) -> str:
    """The whole report as markdown."""
    lines = [f"## moorage bench — {result['started_at']}", ""]
    lines += _preamble(result)
    lines += _engine_table(result)
    lines += _timing_table(result)
    if result.get("detached"):
        lines += _detached_table(result)
    if result.get("restart_delay"):
        from bench import restarts

        lines += restarts.markdown(result["restart_delay"])
    if result.get("adoption"):
        from bench import adoption

        lines += adoption.markdown(result["adoption"])
    if result.get("start_order"):
        from bench import start_order

        lines += start_order.markdown(result["start_order"])
    lines += _notes(result)
    return "\n".join(lines) + "\n"


def _preamble(result: dict[str, Any]) -> list[str]:
    runs = (f" {result['runs']} timed runs per engine and measure after {result['warmup']} untimed "
            "warm-up runs, engines interleaved round-robin; each time is the wall time of the whole "
            "`docker` CLI invocation." if result["measures"] else "")
    return [
        f"Command: `{result['command']}`",
        "",
        f"Host: {result['host']['cpus']} CPUs, kernel {result['host']['kernel']}; "
        f"client {result['docker_cli']}.{runs}",
        "",
        f"Load average (1 / 5 / 15 min): before {fmt_load(result['load_before'])}, "
        f"after {fmt_load(result['load_after'])}.",
        "",
    ]


def _engine_table(result: dict[str, Any]) -> list[str]:
    lines = ["| engine | status | version | default network | extra `run` flags |",
             "|---|---|---|---|---|"]
    for name, info in result["engines"].items():
        flags = " ".join(info.get("run_args") or []) or "—"
        lines.append(f"| {name} | {info['status']} | {info.get('version') or '—'} | "
                     f"{info.get('default_network', '—')} | {flags if flags == '—' else f'`{flags}`'} |")
    return [*lines, ""]


def _timing_table(result: dict[str, Any]) -> list[str]:
    if not result["measures"]:  # a `--net/--logs/--images only` run: their sections follow
        return []
    lines = ["| measure | engine | n | median ms | min ms | p90 ms | moord/engine |",
             "|---|---|---|---|---|---|---|"]
    for measure in result["measures"]:
        first = True
        for name, stats in measure["results"].items():
            title = measure["title"] if first else ""
            first = False
            network = ""
            if measure["key"] == "run_rm_default_network":
                network = f" ({result['engines'][name].get('default_network', '')})"
            rel = "—" if name == "moord" else fmt_ratio(measure["ratios"].get(f"moord/{name}"))
            failed = f", {len(stats['errors'])} failed" if stats.get("errors") else ""
            numbers = " | ".join(fmt_ms(stats.get(k)) for k in ("median_ms", "min_ms", "p90_ms"))
            lines.append(f"| {title} | {name}{network} | {stats['n']}{failed} | {numbers} | {rel} |")
    return [*lines, ""]


def _detached_row(title: str, cells: dict[str, str], ratios: dict[str, float | None],
                  names: list[str]) -> str:
    columns = [cells.get(n, "—") for n in names] + [fmt_ratio(r) for r in ratios.values()]
    return f"| {title} | {' | '.join(columns)} |"


def _detached_table(result: dict[str, Any]) -> list[str]:
    batches: dict[str, Any] = result["detached"]
    names = list(batches)
    peers = [p for p in PEERS if p in batches]
    count = result["detached_count"]
    lines = [f"{count} detached containers per engine (`run -d busybox sleep 600`, interleaved), "
             "then memory with all of them running, then one `docker stop -t 0` of the batch.", "",
             "| " + " | ".join(["measure", *names, *(f"moord/{p}" for p in peers)]) + " |",
             "|---|" + "---|" * (len(names) + len(peers))]
    rows = [
        (f"`run -d`, median ms per start (min{DASH}p90)", "start"),
        ("monitor per container, median RSS / PSS MB", "monitor"),
        (f"daemon RSS MB, idle → {count} running", "daemon"),
        (f"`stop -t 0` of all {count}, s", "stop"),
    ]
    for title, key in rows:
        cells = {n: _detached_cell(key, b) for n, b in batches.items()}
        ratios = {p: ratio(_detached_value(key, batches.get("moord")), _detached_value(key, batches.get(p)))
                  for p in peers}
        lines.append(_detached_row(title, cells, ratios, names))
    return [*lines, ""]


def _detached_value(key: str, batch: dict[str, Any] | None) -> float | None:
    """The number a detached row's ratio is taken on (the first one its cell shows)."""
    if not batch:
        return None
    value: float | None
    if key == "start":
        value = batch["starts"].get("median_ms")
    elif key == "monitor":
        value = batch["monitor"].get("median_rss_kb")
    elif key == "daemon":
        value = batch["daemon_busy"].get("rss_kb")
    else:
        value = batch.get("stop_ms")
    return value


def _detached_cell(key: str, batch: dict[str, Any]) -> str:
    if key == "start":
        s = batch["starts"]
        failed = f", {len(s['errors'])} failed" if s.get("errors") else ""
        spread = f"{fmt_ms(s.get('min_ms'))}{DASH}{fmt_ms(s.get('p90_ms'))}"
        return f"{fmt_ms(s.get('median_ms'))} ({spread}){failed}"
    if key == "monitor":
        m = batch["monitor"]
        if not m.get("count"):
            return "—"
        return f"{m['comm']}: {fmt_mb(m['median_rss_kb'])} / {fmt_mb(m['median_pss_kb'])}"
    if key == "daemon":
        idle, busy = batch["daemon_idle"], batch["daemon_busy"]
        cell = f"{fmt_mb(idle.get('rss_kb'))} → {fmt_mb(busy.get('rss_kb'))}"
        parts = busy.get("processes", {})
        if len(parts) > 1:
            cell += " (" + " + ".join(f"{name} {fmt_mb(p['rss_kb'])}" for name, p in parts.items()) + ")"
        return cell
    if batch.get("stop_ms") is None:
        return f"failed: {batch.get('stop_error')}"
    seconds = batch["stop_ms"] / 1000
    return f"{seconds:.2f}" if seconds >= 1 else f"{seconds:.3f}"


def _notes(result: dict[str, Any]) -> list[str]:
    lines = ["Notes:", ""]
    lines += [f"- {note}" for note in result.get("notes", [])]
    for measure in result["measures"]:
        for name, stats in measure["results"].items():
            if stats.get("errors"):
                lines.append(f"- {name}, {measure['title']}: {len(stats['errors'])} failed; first: "
                             f"{stats['errors'][0]}")
    cleanup = condense(result.get("cleanup", []))
    lines.append("- cleanup: " + ("; ".join(cleanup) if cleanup else "nothing to undo"))
    return lines


def condense(cleanup: list[str]) -> list[str]:
    """The cleanup notes with the iptables ones counted instead of listed, and long lists of
    killed processes and unmounted points summed up (JSON has them all)."""
    rules = chains = 0
    unmounts = [n for n in cleanup if re.match(r"(lazily )?unmounted ", n)]
    summed = len(unmounts) > LIST_LIMIT
    kept: list[str] = []
    for note in cleanup:
        if "FAILED" not in note and re.match(r"ip6?tables -t \w+: deleted ", note):
            rules += 1
        elif "FAILED" not in note and re.match(r"ip6?tables -t \w+: removed chain ", note):
            chains += 1
        elif summed and note in unmounts:
            if note == unmounts[0]:
                lazily = sum(1 for n in unmounts if n.startswith("lazily"))
                kept.append(f"unmounted {len(unmounts)} mount points under the run directory "
                            f"({lazily} lazily)")
        else:
            kept.append(_count_processes(note))
    if rules or chains:
        kept.insert(0, f"iptables: deleted the {rules} rules and {chains} chains the engines added")
    return kept


LIST_LIMIT = 10


def _count_processes(note: str) -> str:
    """"killed leftover processes: a[1], b[2], ..." as counts by name when the list is long."""
    head, sep, listing = note.partition(": ")
    names = re.findall(r"([^,\[]+)\[\d+\]", listing) if sep and "processes" in head else []
    if len(names) <= LIST_LIMIT:
        return note
    counts = Counter(name.strip() for name in names)
    return f"{head}: {len(names)} ({', '.join(f'{n} {TIMES}{c}' for n, c in counts.most_common())})"
