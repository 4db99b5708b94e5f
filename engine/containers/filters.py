"""`docker ps --filter` and `container prune --filter`, as Docker matches them."""

from __future__ import annotations

import re
from collections.abc import Callable

from engine.containers.model import Container, HealthStatus, Status
from engine.errors import InvalidParameter
from engine.filtering import check_filters, invalid_filter, labels_match, one_of
from engine.timestamps import filter_time_ns

LIST_FILTERS = frozenset({"name", "status", "label", "id", "exited", "ancestor", "before",
                          "since", "health", "network", "volume", "publish", "expose",
                          "is-task"})
PRUNE_FILTERS = frozenset({"until", "label", "label!"})
STATUSES = frozenset(s.value for s in Status)
HEALTH_VALUES = frozenset(h.value for h in HealthStatus)  # none, starting, healthy, unhealthy


def list_predicate(
    filters: dict[str, list[str]],
    lookup: Callable[[str], Container],
    image_ids_for: Callable[[str], set[str]],
) -> Callable[[Container], bool]:
    """A predicate for `GET /containers/json?filters=` (values OR'd, keys AND'd)."""
    check_filters(filters, LIST_FILTERS)
    one_of(filters, "status", STATUSES)
    for value in filters.get("health", []):
        if value not in HEALTH_VALUES:
            raise InvalidParameter(f"Unrecognised filter value for health: {value}")
    name_patterns = []
    for pattern in filters.get("name", []):
        try:
            name_patterns.append(re.compile(pattern))
        except re.error:
            raise invalid_filter("name", pattern) from None
    exited: list[int] = []
    for value in filters.get("exited", []):
        try:
            exited.append(int(value))
        except ValueError:
            raise invalid_filter("exited", value) from None
    before = [lookup(ref).created for ref in filters.get("before", [])]
    since = [lookup(ref).created for ref in filters.get("since", [])]
    ancestors: set[str] = set()
    for ref in filters.get("ancestor", []):
        ancestors |= image_ids_for(ref)

    def keep(c: Container) -> bool:
        if name_patterns and not any(p.search("/" + c.name) for p in name_patterns):
            return False
        if filters.get("status") and c.state.status.value not in filters["status"]:
            return False
        if filters.get("id") and not any(c.id.startswith(i) for i in filters["id"]):
            return False
        if filters.get("health") and _health(c) not in filters["health"]:
            return False
        if not labels_match(c.spec.labels, filters):
            return False
        if exited and (c.state.status is not Status.EXITED or c.state.exit_code not in exited):
            return False
        if before and not all(c.created < t for t in before):
            return False
        if since and not all(c.created > t for t in since):
            return False
        return not (filters.get("ancestor") is not None and c.image_id not in ancestors)

    return keep


def _health(c: Container) -> str:
    return c.state.health.status.value if c.state.health is not None else HealthStatus.NONE.value


def prune_keep(filters: dict[str, list[str]]) -> Callable[[Container], bool]:
    """A predicate that is True for containers prune must leave alone: created at or
    after an `until` (a time or a duration ago), or not matching the label filters."""
    check_filters(filters, PRUNE_FILTERS)
    untils = [filter_time_ns(v) / 1e9 for v in filters.get("until", [])]

    def keep(c: Container) -> bool:
        created = c.created.timestamp()
        if untils and not all(created < u for u in untils):
            return True
        return not labels_match(c.spec.labels, filters)

    return keep
