"""Metric families and their Prometheus text exposition (format version 0.0.4).

moord writes the format itself rather than pulling in prometheus_client: it needs three
kinds of metric, a handful of families and one renderer, all on one trio thread (no
locks, no process-wide default registry that tests would share).

A family is a name, a help text, its label names and one value (or one histogram) per
combination of label values. Label values are given as keyword arguments and must name
exactly the family's labels, so a typo fails where it is made, not in a dashboard.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

import attrs

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Prometheus' default buckets (seconds), the ones dockerd's timers use too.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

Key = tuple[str, ...]


def _names(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _floats(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _check_name(_: object, __: object, name: str) -> None:
    if not _METRIC_NAME.match(name):
        raise ValueError(f"invalid metric name {name!r}")


def _check_labels(_: object, __: object, labels: tuple[str, ...]) -> None:
    for label in labels:
        if not _LABEL_NAME.match(label) or label.startswith("__") or label == "le":
            raise ValueError(f"invalid label name {label!r}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"repeated label name in {labels!r}")


def escape_label_value(value: str) -> str:
    r"""A label value inside double quotes: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    r"""A HELP text: backslash and newline escaped (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value as Prometheus parses it: integers without a fraction, +Inf, NaN."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _label_text(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in pairs) + "}"


@attrs.define(eq=False)
class _Family:
    name: str = attrs.field(validator=_check_name)
    help: str
    labels: tuple[str, ...] = attrs.field(default=(), converter=_names, validator=_check_labels)

    kind = "untyped"

    def key(self, labels: Mapping[str, str]) -> Key:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, not {tuple(labels)}")
        return tuple(str(labels[name]) for name in self.labels)

    def pairs(self, key: Key) -> list[tuple[str, str]]:
        return list(zip(self.labels, key, strict=True))

    def lines(self) -> Iterator[str]:
        yield f"# HELP {self.name} {escape_help(self.help)}"
        yield f"# TYPE {self.name} {self.kind}"
        yield from self.sample_lines()

    def sample_lines(self) -> Iterator[str]:
        raise NotImplementedError

    def remove_where(self, **labels: str) -> None:
        """Drop every series whose labels include these (a removed container's)."""
        wanted = [(self.labels.index(k), v) for k, v in labels.items() if k in self.labels]
        if not wanted:
            return
        store = self._store()
        for key in [k for k in store if all(k[i] == v for i, v in wanted)]:
            del store[key]

    def _store(self) -> dict[Key, object]:
        raise NotImplementedError


@attrs.define(eq=False)
class _Valued(_Family):
    """A family with one number per series."""

    values: dict[Key, float] = attrs.field(factory=dict)

    def get(self, **labels: str) -> float:
        return self.values.get(self.key(labels), 0.0)

    def _add(self, amount: float, labels: Mapping[str, str]) -> None:
        key = self.key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def sample_lines(self) -> Iterator[str]:
        for key, value in self.values.items():
            yield f"{self.name}{_label_text(self.pairs(key))} {format_value(value)}"

    def _store(self) -> dict[Key, object]:
        return self.values  # type: ignore[return-value]


@attrs.define(eq=False)
class Gauge(_Valued):
    """A value that goes up and down (containers in a state, a duration measured once)."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        self.values[self.key(labels)] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self._add(amount, labels)

    def clear(self) -> None:
        self.values.clear()


@attrs.define(eq=False)
class Counter(_Valued):
    """A count that only goes up; by the naming rules its name ends in `_total`."""

    kind = "counter"

    def __attrs_post_init__(self) -> None:
        if not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} must end in _total")

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter cannot go down ({amount})")
        self._add(amount, labels)

    def declare(self, **labels: str) -> None:
        """Make a series exist at zero, so a rate over it starts from the first scrape."""
        self.values.setdefault(self.key(labels), 0.0)


@attrs.define(eq=False)
class _Histogram:
    counts: list[int]
    total: float = 0.0
    count: int = 0


def _check_buckets(_: object, __: object, buckets: tuple[float, ...]) -> None:
    if not buckets or list(buckets) != sorted(set(buckets)) or math.isinf(buckets[-1]):
        raise ValueError(f"histogram buckets must be finite and increasing: {buckets!r}")


@attrs.define(eq=False)
class Histogram(_Family):
    """Observations counted into buckets by upper bound, with their sum and count."""

    buckets: tuple[float, ...] = attrs.field(default=DEFAULT_BUCKETS, converter=_floats,
                                             validator=_check_buckets)
    series: dict[Key, _Histogram] = attrs.field(factory=dict)
    kind = "histogram"

    def _series(self, labels: Mapping[str, str]) -> _Histogram:
        key = self.key(labels)
        found = self.series.get(key)
        if found is None:
            found = self.series[key] = _Histogram([0] * len(self.buckets))
        return found

    def declare(self, **labels: str) -> None:
        """Make a series exist with no observations (dockerd pre-declares its actions)."""
        self._series(labels)

    def observe(self, value: float, **labels: str) -> None:
        h = self._series(labels)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                h.counts[i] += 1
        h.total += value
        h.count += 1

    @contextmanager
    def time(self, **labels: str) -> Iterator[None]:
        """Observe how long the block took, if it finished without an exception (as
        dockerd records an action only when it succeeded)."""
        self.key(labels)
        started = time.monotonic()
        yield
        self.observe(time.monotonic() - started, **labels)

    def sample_lines(self) -> Iterator[str]:
        for key, h in self.series.items():
            pairs = self.pairs(key)
            for bound, count in zip(self.buckets, h.counts, strict=True):
                le = _label_text([*pairs, ("le", format_value(bound))])
                yield f"{self.name}_bucket{le} {count}"
            yield f"{self.name}_bucket{_label_text([*pairs, ('le', '+Inf')])} {h.count}"
            yield f"{self.name}_sum{_label_text(pairs)} {format_value(h.total)}"
            yield f"{self.name}_count{_label_text(pairs)} {h.count}"

    def _store(self) -> dict[Key, object]:
        return self.series  # type: ignore[return-value]


Family = Counter | Gauge | Histogram
F = TypeVar("F", Counter, Gauge, Histogram)


@attrs.define(eq=False)
class Registry:
    """The families one endpoint shows, and callbacks that refresh gauges at each scrape."""

    families: dict[str, Family] = attrs.field(factory=dict)
    collectors: list[Callable[[], None]] = attrs.field(factory=list)

    def add(self, family: F) -> F:
        if family.name in self.families:
            raise ValueError(f"metric {family.name} is registered twice")
        self.families[family.name] = family
        return family

    def on_collect(self, fn: Callable[[], None]) -> None:
        """Run `fn` before each exposition (gauges read from state, not kept up to date)."""
        self.collectors.append(fn)

    def remove_where(self, **labels: str) -> None:
        for family in self.families.values():
            family.remove_where(**labels)

    def render(self) -> str:
        for collect in self.collectors:
            collect()
        lines: list[str] = []
        for family in self.families.values():
            lines.extend(family.lines())
        return "\n".join(lines) + "\n"
