"""`GET /networks` and its filters (driver, id, label, name, scope, type, dangling).

Docker's filter keys and its "invalid filter" refusals, in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from engine.errors import InvalidParameter
from engine.filtering import label_matches
from engine.networks.attachments import Attachments
from engine.networks.catalog import NetworkCatalog
from engine.networks.model import NetworkRecord


def list_networks(catalog: NetworkCatalog, attachments: Attachments,
                  filters: Mapping[str, Sequence[str]] | None = None) -> list[NetworkRecord]:
    """`GET /networks`, with Docker's filters (driver, id, label, name, scope, type,
    dangling)."""
    filters = dict(filters or {})
    known = {"driver", "id", "label", "name", "scope", "type", "dangling"}
    for key in filters:
        if key not in known:
            raise InvalidParameter(f"invalid filter '{key}'")
    for value in filters.get("type", []):
        if value not in ("custom", "builtin"):
            raise InvalidParameter(f"invalid filter: 'type'='{value}'")
    for value in filters.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidParameter(f"invalid filter 'dangling={value}'")
    result = []
    for record in sorted(catalog.records.values(), key=lambda r: r.created):
        if not _matches(record, filters, attachments):
            continue
        result.append(record)
    return result


def _matches(record: NetworkRecord, filters: Mapping[str, Sequence[str]],
             attachments: Attachments) -> bool:
    def any_of(key: str, test: Callable[[str], bool]) -> bool:
        values = filters.get(key)
        return not values or any(test(v) for v in values)

    if not any_of("driver", lambda v: record.driver == v):
        return False
    if not any_of("id", lambda v: v in record.id):
        return False
    if not any_of("name", lambda v: v in record.name):
        return False
    if not any_of("scope", lambda v: v == record.scope):
        return False
    if not any_of("type", lambda v: (v == "builtin") == record.predefined):
        return False
    labels = filters.get("label")
    if labels and not all(label_matches(record.labels, f) for f in labels):
        return False
    for value in filters.get("dangling", []):
        dangling = value.lower() in ("true", "1")
        used = bool(attachments.endpoints_on(record.id)) or record.predefined
        if dangling == used:
            return False
    return True


__all__ = ["list_networks"]
