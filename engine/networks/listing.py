"""`GET /networks` and its filters (driver, id, label, name, scope, type, dangling).

Docker's filter keys, checked through `engine.filtering` (one odd refusal of its own).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.errors import InvalidParameter
from engine.filtering import Filters, bool_filter, check_filters, labels_match
from engine.networks.attachments import Attachments
from engine.networks.catalog import NetworkCatalog
from engine.networks.model import NetworkRecord

ACCEPTED_FILTERS = frozenset({"driver", "id", "label", "name", "scope", "type", "dangling"})


def list_networks(catalog: NetworkCatalog, attachments: Attachments,
                  filters: Filters | None = None) -> list[NetworkRecord]:
    """`GET /networks`, with Docker's filters (driver, id, label, name, scope, type,
    dangling)."""
    filters = dict(filters or {})
    check_filters(filters, ACCEPTED_FILTERS)
    for value in filters.get("type", []):
        if value not in ("custom", "builtin"):
            # dockerd words this one refusal differently from its other filters
            raise InvalidParameter(f"invalid filter: 'type'='{value}'")
    dangling = bool_filter(filters, "dangling")
    return [record for record in sorted(catalog.records.values(), key=lambda r: r.created)
            if _matches(record, filters, dangling, attachments)]


def _matches(record: NetworkRecord, filters: Filters, dangling: bool | None,
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
    if not labels_match(record.labels, filters):
        return False
    if dangling is not None:
        used = bool(attachments.endpoints_on(record.id)) or record.predefined
        if dangling == used:
            return False
    return True


__all__ = ["list_networks"]
