"""`json-file` (also answering to `k8s-file` and `local`): the file moord keeps.

It is conmon's k8s-file format with moord's rotation: Docker users' `--log-opt
max-size/max-file` mean what they mean with Docker's json-file, but the default is
bounded (20 MiB, 5 files, like Docker's `local`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from engine.units import ram_in_bytes
from plugins.contracts import InvalidLogOption, LoggedContainer, LogRecord

# options Docker's json-file driver accepts; moord acts on the first two
FILE_OPTIONS = frozenset({"max-size", "max-file", "compress", "labels", "labels-regex", "env",
                          "env-regex", "tag", "mode", "max-buffer-size"})


@attrs.frozen
class FileDriver:
    """conmon writes the k8s-file; moord rotates it by size and count and serves `logs`."""

    name: str
    readable: bool = True
    ships: bool = False

    def validate(self, options: Mapping[str, str]) -> Mapping[str, str]:
        for key in options:
            if key not in FILE_OPTIONS:
                raise InvalidLogOption(f"unknown log opt '{key}' for {self.name} log driver")
        if "max-size" in options and options["max-size"] != "-1":
            try:
                if ram_in_bytes(options["max-size"]) <= 0:
                    raise ValueError
            except ValueError:
                raise InvalidLogOption(f"invalid max-size: {options['max-size']}") from None
        if "max-file" in options:
            try:
                if int(options["max-file"]) < 1:
                    raise ValueError
            except ValueError:
                raise InvalidLogOption("max-file cannot be less than 1") from None
        if options.get("compress", "false") not in ("true", "false", "1", "0"):
            raise InvalidLogOption(f"error parsing compress: {options['compress']}")
        return dict(options)

    async def ship(self, container: LoggedContainer, records: Sequence[LogRecord]) -> None:
        return None
