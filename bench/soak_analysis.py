"""The soak's arithmetic, kept apart from processes and sockets so a unit test can check it:
sequence gaps in a followed log, slope and flatness of a sampled series, leak diffs of two
snapshots, and the text rendering of the curves.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# `docker logs --timestamps` line of a chatty container: "<RFC 3339 nano> soak <seq> <padding>"
LINE = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\dT\S+)\s+soak (?P<seq>\d+)(?:\s|$)")
RAMP = "_.-:=+*#%@"  # ASCII sparkline levels, low to high


def parse_line(text: str) -> tuple[str, int] | None:
    """(timestamp, sequence number) of a chatty container's line; None for anything else."""
    found = LINE.match(text)
    return (found["ts"], int(found["seq"])) if found else None


@dataclass
class SequenceCheck:
    """What one follower saw of a container numbering its lines 0, 1, 2, …

    A reconnect resumes with `since` = the last timestamp seen, which is inclusive, so the
    first lines of a new stream may repeat the end of the previous one: those repeats are
    expected and counted apart (seam duplicates). A repeat anywhere else is a duplicate, a
    jump forward is a gap (lines lost), and a missing line that turns up late is reordered.
    """

    next_seq: int = 0
    received: int = 0
    lost: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (first missing seq, how many)
    seam_duplicates: int = 0
    duplicates: int = 0
    reordered: int = 0
    streams: int = 0
    _at_seam: bool = False
    _missing: set[int] = field(default_factory=set)

    def new_stream(self) -> None:
        """A (re)connected stream starts: its leading repeats are expected."""
        self.streams += 1
        self._at_seam = self.streams > 1

    def feed(self, seq: int) -> None:
        if seq >= self.next_seq:
            if seq > self.next_seq:
                missing = seq - self.next_seq
                self.gaps.append((self.next_seq, missing))
                self.lost += missing
                self._missing.update(range(self.next_seq, seq))
            self.next_seq = seq + 1
            self.received += 1
            self._at_seam = False
        elif seq in self._missing:
            self._missing.discard(seq)
            self.lost -= 1
            self.reordered += 1
            self.received += 1
        elif self._at_seam:
            self.seam_duplicates += 1
        else:
            self.duplicates += 1

    def finish(self, last_written: int | None) -> int:
        """Lines the container wrote after the last one seen (lost at the tail); adds them to `lost`."""
        if last_written is None or last_written < self.next_seq:
            return 0
        tail = last_written + 1 - self.next_seq
        self.gaps.append((self.next_seq, tail))
        self.lost += tail
        self.next_seq = last_written + 1
        return tail


def slope_per_minute(times: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of values over times (seconds), per minute; 0 with fewer than 2 points."""
    if len(times) < 2:
        return 0.0
    mean_t = statistics.fmean(times)
    mean_v = statistics.fmean(values)
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread == 0:
        return 0.0
    return 60.0 * sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / spread


@dataclass(frozen=True)
class Trend:
    """One series over one moord lifetime (after its warm-up)."""

    samples: int
    minimum: float
    maximum: float
    slope_per_min: float
    span_s: float
    flat: bool


def trend(times: Sequence[float], values: Sequence[float], *, tolerance: float, floor: float) -> Trend:
    """Flat when the fitted rise over the span stays within `tolerance` of the median plus
    `floor` (absolute: a few fds or MiB come and go with the load's own comings and goings)."""
    if not values:
        return Trend(0, 0.0, 0.0, 0.0, 0.0, True)
    slope = slope_per_minute(times, values)
    span = times[-1] - times[0]
    rise = slope * span / 60.0
    allowed = tolerance * statistics.median(values) + floor
    return Trend(len(values), min(values), max(values), slope, span, rise <= allowed)


def lifetimes(pids: Sequence[int]) -> list[tuple[int, int, int]]:
    """(pid, first index, end index) of each run of equal consecutive pids (one moord lifetime)."""
    runs: list[tuple[int, int, int]] = []
    start = 0
    for i in range(1, len(pids) + 1):
        if i == len(pids) or pids[i] != pids[start]:
            runs.append((pids[start], start, i))
            start = i
    return runs


def leak_diff(before: Mapping[str, set[str]], after: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """What each category holds now that it did not hold before (only non-empty categories)."""
    found = {}
    for category, items in after.items():
        new = sorted(items - before.get(category, set()))
        if new:
            found[category] = new
    return found


def counted(lines: Sequence[str]) -> set[str]:
    """Lines as a set that keeps repeats apart ("x", "x (2)"), for a multiset diff."""
    seen: dict[str, int] = {}
    out = set()
    for line in lines:
        seen[line] = seen.get(line, 0) + 1
        out.add(line if seen[line] == 1 else f"{line} ({seen[line]})")
    return out


def sparkline(values: Sequence[float], width: int) -> str:
    """The series squeezed into `width` columns (mean per column), one ASCII level each,
    scaled between the series' own minimum and maximum."""
    if not values:
        return ""
    columns = resample(values, width)
    low, high = min(columns), max(columns)
    if high == low:
        return RAMP[0] * len(columns)
    top = len(RAMP) - 1
    return "".join(RAMP[round((v - low) / (high - low) * top)] for v in columns)


def resample(values: Sequence[float], width: int) -> list[float]:
    """Means of `width` consecutive slices (or the values themselves when there are fewer)."""
    n = len(values)
    if n <= width:
        return list(values)
    return [statistics.fmean(values[i * n // width:(i + 1) * n // width]) for i in range(width)]


def marker_row(times: Sequence[float], marks: Sequence[tuple[float, str]], width: int) -> str:
    """A row under the sparklines with a letter where an event (a kill, a restart) happened."""
    if not times:
        return ""
    n = min(len(times), width)
    row = [" "] * n
    start, end = times[0], times[-1]
    for at, letter in marks:
        if end > start and start <= at <= end:
            row[min(n - 1, int((at - start) / (end - start) * n))] = letter
    return "".join(row)
