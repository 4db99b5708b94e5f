"""The labels of start order: `moorage.depends-on` and `moorage.depends-on.timeout`.

`moorage.depends-on=db:healthy,cache:started` names the containers (by name or ID, as
given: a name follows whichever container bears it, so a container recreated under
its name, as compose and `docker rm && docker run` do, keeps its dependents) and the
condition each must meet before this one is started by its restart policy at moord's
start: `started` (running; the default when none is given) or `healthy` (its health
check passed; running, when it has none). Pure (stdlib, durations, errors): `moor`
imports it for `--depends-on`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

from engine.durations import HOUR, SECOND, DurationError, format_duration, parse_duration
from engine.errors import InvalidParameter

DEPENDS_ON_LABEL: Final = "moorage.depends-on"
DEPENDS_ON_TIMEOUT_LABEL: Final = "moorage.depends-on.timeout"
CONDITIONS: Final = ("started", "healthy")
#: how long a dependent waits for its dependencies before it starts anyway
DEFAULT_TIMEOUT_NS: Final = 120 * SECOND
_MAX_TIMEOUT_NS: Final = 24 * HOUR


@attrs.frozen
class Dependency:
    """One entry of `moorage.depends-on`: a container reference and its condition."""

    ref: str = attrs.field(validator=attrs.validators.min_len(1))
    condition: str = attrs.field(default="started", validator=attrs.validators.in_(CONDITIONS))

    def __str__(self) -> str:
        return f"{self.ref}:{self.condition}"


def parse_depends_on(value: str) -> list[Dependency]:
    """`db:healthy,cache` → its dependencies; a 400 that quotes the label when malformed."""
    found: list[Dependency] = []
    seen: set[str] = set()
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        ref, sep, condition = entry.rpartition(":")
        if not sep:
            ref, condition = entry, "started"
        ref = ref.strip().removeprefix("/")
        condition = condition.strip()
        if not ref:
            raise _bad(value, f"{entry!r} names no container")
        if condition not in CONDITIONS:
            raise _bad(value, f"unknown condition {condition!r} (one of {', '.join(CONDITIONS)})")
        if ref in seen:
            raise _bad(value, f"{ref!r} is named twice")
        seen.add(ref)
        found.append(Dependency(ref, condition))
    return found


def parse_timeout(value: str) -> int:
    """A Go duration (`90s`, `5m`), in nanoseconds: above zero, at most 24h."""
    try:
        ns = parse_duration(value.strip())
    except DurationError as exc:
        raise InvalidParameter(f"invalid label {DEPENDS_ON_TIMEOUT_LABEL}={value!r}: "
                               f"{exc.message}") from None
    if ns <= 0 or ns > _MAX_TIMEOUT_NS:
        raise InvalidParameter(f"invalid label {DEPENDS_ON_TIMEOUT_LABEL}={value!r}: "
                               f"it must be above 0s and at most {format_duration(_MAX_TIMEOUT_NS)}")
    return ns


def dependencies_of(labels: Mapping[str, str]) -> list[Dependency]:
    """What a container's labels say it depends on (none without the label)."""
    value = labels.get(DEPENDS_ON_LABEL)
    return parse_depends_on(value) if value is not None else []


def timeout_of(labels: Mapping[str, str]) -> int:
    """How long (ns) a container waits for its dependencies: its label's or the default."""
    value = labels.get(DEPENDS_ON_TIMEOUT_LABEL)
    return parse_timeout(value) if value is not None else DEFAULT_TIMEOUT_NS


def _bad(value: str, why: str) -> InvalidParameter:
    return InvalidParameter(f"invalid label {DEPENDS_ON_LABEL}={value!r}: {why}")
