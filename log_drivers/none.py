"""`none`: the output is discarded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from plugins.contracts import InvalidLogOption, LoggedContainer, LogRecord


@attrs.frozen
class NoneDriver:
    """Discard the output; `docker logs` says the driver doesn't support reading."""

    name: str = "none"
    readable: bool = False
    ships: bool = False

    def validate(self, options: Mapping[str, str]) -> Mapping[str, str]:
        for key in options:
            if key not in ("mode", "max-buffer-size"):
                raise InvalidLogOption(f"unknown log opt '{key}' for none log driver")
        return dict(options)

    async def ship(self, container: LoggedContainer, records: Sequence[LogRecord]) -> None:
        return None
