"""Builder flags (`--name=value` before an instruction's arguments), refused as Docker refuses them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.dockerfile.errors import _Refused, _suggest

_FlagValue = bool | str | list[str]


def _parse_flags(words: Sequence[str], spec: Mapping[str, str]) -> dict[str, _FlagValue]:
    """Docker's builder flags: `spec` maps a name to "bool", "string" or "strings"."""
    values: dict[str, _FlagValue] = {}
    for word in words:
        if word == "--":
            break
        if not word.startswith("--"):
            raise _Refused(f"arg should start with -- : {word}")
        flag, has_value, value = word.partition("=")
        name = flag[2:]
        kind = spec.get(name)
        if kind is None:
            raise _Refused(f"unknown flag: {flag}" + _suggest(name, list(spec), case_sensitive=True))
        if name in values and kind != "strings":
            raise _Refused(f"duplicate flag specified: {flag}")
        if kind == "bool":
            if has_value and not value:
                raise _Refused(f"missing a value on flag: {flag}")
            if value.lower() not in ("true", "false", ""):
                raise _Refused(f"expecting boolean value for flag {flag}, not: {value}")
            values[name] = value.lower() != "false"
        elif not has_value:
            raise _Refused(f"missing a value on flag: {flag}")
        elif kind == "strings":
            previous = values.get(name)
            values[name] = [*(previous if isinstance(previous, list) else []), value]
        else:
            values[name] = value
    return values


def _opt_str(flags: Mapping[str, _FlagValue], name: str) -> str | None:
    value = flags.get(name)
    return value if isinstance(value, str) else None


def _opt_strs(flags: Mapping[str, _FlagValue], name: str) -> tuple[str, ...]:
    value = flags.get(name)
    return tuple(value) if isinstance(value, list) else ()
