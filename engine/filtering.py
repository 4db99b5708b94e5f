"""The pieces every `filters=` of the Docker API shares: label tests and boolean values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.errors import InvalidParameter


def label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    """`key` (present) or `key=value` (present with that value), as Docker's label filter."""
    key, sep, value = wanted.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value


def bool_filter(filters: Mapping[str, Sequence[str]], key: str) -> bool | None:
    """A `true`/`false` filter (None when absent); conflicting or odd values are a 400."""
    values = {v.strip().lower() for v in filters.get(key, [])}
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter(f"invalid filter '{key}': conflicting values")
    value = values.pop()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidParameter(f"invalid filter '{key}={value}'")
