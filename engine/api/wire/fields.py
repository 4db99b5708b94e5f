"""Reading typed fields out of a request's JSON object, with dockerd's 400 for a wrong type.

Every create and update body (containers, networks, volumes) goes through these, so a
string where a number belongs is refused the same way everywhere: `invalid type for
<where><key>: expected …`. A missing or null field reads as the type's empty value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.errors import InvalidParameter
from engine.limits import INT64, GoInt, Number

Body = Mapping[str, Any]


def _wrong_type(where: str, key: str, expected: str) -> InvalidParameter:
    return InvalidParameter(f"invalid type for {where}{key}: expected {expected}")


def string(d: Body, key: str, where: str = "") -> str:
    value = d.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _wrong_type(where, key, "a string")
    return value


def boolean(d: Body, key: str, where: str = "") -> bool:
    value = d.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _wrong_type(where, key, "a boolean")
    return value


def integer(d: Body, key: str, where: str = "", default: int = 0, *,
            go_type: GoInt = INT64) -> int:
    """An integer that fits the Go type Docker decodes the field into (int64 unless
    said otherwise), refused in the words of dockerd's JSON decoder if it does not."""
    value = d.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(where, key, "an integer")
    return fitting(value, go_type, where + key)


def fitting(value: int, go_type: GoInt, field: str) -> int:
    """`value` if the Go type holds it, else the 400 of dockerd's JSON decoder."""
    if not go_type.admits(value):
        raise InvalidParameter(f"invalid JSON: json: cannot unmarshal number {value} into Go "
                               f"struct field {field} of type {go_type.name}")
    return value


def optional_integer(d: Body, key: str, where: str = "", *,
                     go_type: GoInt = INT64) -> int | None:
    if d.get(key) is None:
        return None
    return integer(d, key, where, go_type=go_type)


def checked_number(d: Body, key: str, number: Number, where: str = "") -> int | None:
    """A number of `engine.limits` (Go type and dockerd's bounds); None when absent."""
    value = optional_integer(d, key, where, go_type=number.go_type)
    message = number.bounds.violated_by(value) if number.bounds is not None else None
    if message is not None:
        raise InvalidParameter(message)
    return value


def string_list(d: Body, key: str, where: str = "") -> list[str]:
    value = d.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong_type(where, key, "a list of strings")
    return list(value)


def string_slice(d: Body, key: str, where: str = "") -> list[str] | None:
    """Docker's StrSlice: null, a string, or a list of strings."""
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong_type(where, key, "a string or a list of strings")
    return list(value)


def string_map(d: Body, key: str, where: str = "") -> dict[str, str]:
    value = d.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _wrong_type(where, key, "an object of strings")
    return dict(value)


def key_set(d: Body, key: str, where: str = "") -> list[str]:
    """An object used as a set (`ExposedPorts`, `Volumes`): its keys."""
    return list(json_object(d, key, where).keys())


def json_object(d: Body, key: str, where: str = "") -> dict[str, Any]:
    value = d.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _wrong_type(where, key, "an object")
    return value


def go_spelling(d: Body, known: Sequence[str]) -> dict[str, Any]:
    """`d` with its keys matched to `known` as Go's JSON decoder matches struct fields:
    an exact match first, else one that differs only in case (the SDK sends the exec's
    `detachKeys` so, and dockerd takes it). Keys matching nothing stay as they are."""
    by_fold = {name.casefold(): name for name in known}
    out: dict[str, Any] = {}
    for key, value in d.items():
        if key in by_fold.values():
            out[key] = value
            continue
        name = by_fold.get(key.casefold(), key)
        out.setdefault(name, value)
    return out
