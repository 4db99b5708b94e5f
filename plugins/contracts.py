"""The contracts drivers implement. Documented here and in docs/plugins.md.

Drivers are plain objects; moord calls their synchronous methods on its event loop
(they must not block) and awaits their async ones under trio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import attrs


@attrs.frozen
class LoggedContainer:
    """What a log driver learns about the container whose lines it gets."""

    id: str
    name: str
    image: str
    labels: Mapping[str, str]
    options: Mapping[str, str]  # the driver's `--log-opt`s, as its `validate` returned them


@attrs.frozen
class LogRecord:
    """One line of output: `data` ends with a newline unless the line was cut short."""

    stream: str  # "stdout" | "stderr"
    timestamp_ns: int
    data: bytes


class InvalidLogOption(ValueError):
    """A `--log-opt` the driver refuses; its message is shown to the user (400)."""


@runtime_checkable
class LogDriver(Protocol):
    """Where a container's output goes.

    - `name`: what `--log-driver` says.
    - `readable`: whether the engine keeps its own log file (so `docker logs` works).
      A driver that is neither readable nor shipping discards the output (`none`).
    - `ships`: whether moord should hand it every line (`ship`).
    - `validate(options)`: check and normalise `--log-opt`s at create time; raise
      `InvalidLogOption` with a message for the user. Known generic options
      (`max-size`, `max-file`, `mode`, `tag`, `labels`, `env`) may be left in.
    - `ship(container, records)`: when `ships`, moord follows the log file while the
      container runs and awaits this with each batch of new lines, in order; an
      exception is logged and the batch is dropped for that sink (a slow or broken sink
      never blocks the container: the file has it all). A shipping driver needs the
      file, so moord keeps it even when `readable` is False (and then refuses `logs`).
    """

    @property
    def name(self) -> str: ...

    @property
    def readable(self) -> bool: ...

    @property
    def ships(self) -> bool: ...

    def validate(self, options: Mapping[str, str]) -> Mapping[str, str]: ...

    async def ship(self, container: LoggedContainer, records: Sequence[LogRecord]) -> None: ...
