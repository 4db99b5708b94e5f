"""`docker top`: the host's `ps`, narrowed to the container's processes.

As dockerd does: `ps` runs on the host with the caller's arguments (default `-ef`),
and the rows whose PID column holds a process of the container's cgroup are kept. The
header gives the titles; the last column (the command) keeps its spaces.
"""

from __future__ import annotations

import subprocess

import attrs

from engine.errors import InvalidParameter, SystemFailure


@attrs.frozen
class TopResult:
    titles: list[str]
    processes: list[list[str]]


def parse_ps(output: str, pids: set[int]) -> TopResult:
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise SystemFailure("ps printed nothing")
    titles = lines[0].split()
    try:
        pid_column = titles.index("PID")
    except ValueError:
        raise InvalidParameter("Couldn't find PID field in ps output") from None
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) <= pid_column:
            continue
        try:
            pid = int(fields[pid_column])
        except ValueError:
            continue
        if pid in pids:
            rows.append(fields)
    return TopResult(titles, rows)


def run_ps(ps_args: str) -> str:
    """The host's `ps` (blocking); arguments as the client gave them, split on spaces."""
    args = ps_args.split() if ps_args else ["-ef"]
    try:
        done = subprocess.run(["ps", *args], capture_output=True, text=True, timeout=30,
                              check=False)
    except OSError as exc:
        raise SystemFailure(f"running ps: {exc}") from None
    if done.returncode != 0:
        raise SystemFailure(f"ps: {done.stderr.strip() or f'exit status {done.returncode}'}")
    return done.stdout


__all__ = ["TopResult", "parse_ps", "run_ps"]
