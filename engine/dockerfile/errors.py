"""Dockerfile errors, worded as Docker words them.

`DockerfileError` is what callers see. Instruction parsers raise `_Refused` instead,
because only their caller knows which lines to blame. `_suggest` and `_go_quote`
reproduce Docker's (Go's) wording, so messages match the daemon's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from engine.errors import InvalidParameter


class DockerfileError(InvalidParameter):
    """A Dockerfile that does not parse; `line` is 1-based (0: the file as a whole)."""

    def __init__(self, detail: str, line: int, end_line: int | None = None) -> None:
        message = f"dockerfile parse error on line {line}: {detail}" if line else detail
        super().__init__(message)
        self.detail = detail
        self.line = line
        self.end_line = end_line if end_line is not None else line


class _Refused(Exception):
    """An instruction-level complaint; the caller knows the lines and raises DockerfileError."""


def _levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _suggest(value: str, options: Sequence[str], *, case_sensitive: bool) -> str:
    """Docker's `(did you mean X?)` tail: the closest option under distance 3."""
    probe = value if case_sensitive else value.lower()
    best, best_distance = "", 3
    for option in sorted(options):
        candidate = option if case_sensitive else option.lower()
        if candidate == probe:
            return ""
        distance = _levenshtein(probe, candidate)
        if distance < best_distance:
            best, best_distance = candidate, distance
    if not best:
        return ""
    if not case_sensitive:
        best = best.lower() if value == value.lower() else best.upper() if value == value.upper() else best
    return f" (did you mean {best}?)"


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
