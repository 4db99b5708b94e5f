"""Docker's `filters=`: the one parse of the query argument and the checks every list
and prune endpoint shares, with dockerd's words for what they refuse.

The argument is JSON, `{"key": {"value": true}}` or the legacy `{"key": ["value"]}`;
`parse_filters` makes it `{key: [values]}`. Each endpoint declares the keys it accepts
(`check_filters`), then reads values through the helpers here: `bool_filter` for
`dangling`/`all`, `one_of` for enumerations (`status`), `labels_match` for `label`
and `label!`. Values of one key are OR'd, keys AND'd, as Docker matches them.
A refusal is an InvalidParameter (400) saying `invalid filter '<key>'` or
`invalid filter '<key>=<value>'` (`invalid_filter`), as dockerd says it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence

from engine.errors import InvalidParameter

Filters = Mapping[str, Sequence[str]]


def invalid_filter(key: str, value: str | None = None) -> InvalidParameter:
    """dockerd's refusal of a filter key, or of one of its values."""
    return InvalidParameter(f"invalid filter '{key}'" if value is None
                            else f"invalid filter '{key}={value}'")


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """The `filters` query argument, in both the new and the legacy JSON forms.

    In the new form a value mapped to false is left out, as Docker leaves it out.
    """
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise invalid_filter(raw) from None
    if not isinstance(parsed, dict):
        raise invalid_filter(raw)
    result: dict[str, list[str]] = {}
    for key, value in parsed.items():
        if isinstance(value, dict):
            result[key] = [k for k, enabled in value.items() if enabled]
        elif isinstance(value, list):
            result[key] = [str(v) for v in value]
        else:
            raise invalid_filter(raw)
    return result


def check_filters(filters: Filters, accepted: Collection[str]) -> None:
    """Refuse any key the endpoint does not accept (Docker's `Args.Validate`)."""
    for key in filters:
        if key not in accepted:
            raise invalid_filter(key)


def one_of(filters: Filters, key: str, allowed: Collection[str]) -> list[str]:
    """The values of `key`, each of which must be in `allowed`."""
    values = list(filters.get(key, []))
    for value in values:
        if value not in allowed:
            raise invalid_filter(key, value)
    return values


def bool_filter(filters: Filters, key: str) -> bool | None:
    """A `true`/`false` (`1`/`0`) filter, None when absent; a key without values, and
    conflicting or odd values, are refused."""
    if key not in filters:
        return None
    values = {v.strip().lower() for v in filters[key]}
    if not values:
        raise invalid_filter(key)
    if len(values) > 1:
        raise InvalidParameter(f"invalid filter '{key}': conflicting values")
    value = values.pop()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise invalid_filter(key, value)


def label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    """`key` (present) or `key=value` (present with that value), as Docker's label filter."""
    key, sep, value = wanted.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value


def labels_match(labels: Mapping[str, str], filters: Filters) -> bool:
    """Every `label` filter holds and no `label!` filter does (prune's negation)."""
    if not all(label_matches(labels, w) for w in filters.get("label", [])):
        return False
    return not any(label_matches(labels, w) for w in filters.get("label!", []))


__all__ = [
    "Filters",
    "bool_filter",
    "check_filters",
    "invalid_filter",
    "label_matches",
    "labels_match",
    "one_of",
    "parse_filters",
]
