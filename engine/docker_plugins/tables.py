"""A driver table that knows the pluggy drivers and finds Docker plugins by name.

The engine's services keep their drivers in a mapping; handing them one of these lets
`docker volume create -d rclone` or `docker network create -d weave` reach a Docker
plugin without the services knowing the protocol. Looking a name up never does I/O
(it happens on the event loop): an unknown, well-formed name gives an adapter whose
first call finds and activates the plugin (or fails, after the wait, with Docker's
"plugin not found"). Iterating yields the pluggy drivers and the plugins of this kind
activated so far — what `docker info` lists, as dockerd does — so start-up, which
walks every driver, never waits on a plugin that is not running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import TypeVar

import attrs

from engine.docker_plugins.discovery import valid_name
from engine.docker_plugins.registry import PluginRegistry

D = TypeVar("D")


@attrs.define(eq=False)
class DriverTable(MutableMapping[str, D]):
    """`builtins` by name, else `adapter(name)` for the plugins implementing `kind`."""

    builtins: dict[str, D]
    registry: PluginRegistry
    kind: str
    adapter: Callable[[str], D]
    remote: dict[str, D] = attrs.field(factory=dict)

    def __getitem__(self, name: str) -> D:
        if name in self.builtins:
            return self.builtins[name]
        if not valid_name(name):
            raise KeyError(name)
        if name not in self.remote:
            self.remote[name] = self.adapter(name)
        return self.remote[name]

    def __setitem__(self, name: str, driver: D) -> None:
        self.builtins[name] = driver

    def __delitem__(self, name: str) -> None:
        self.builtins.pop(name, None)
        self.remote.pop(name, None)

    def activated(self) -> list[str]:
        """The plugins of this kind activated so far (not shadowed by a pluggy driver)."""
        return [p.name for p in self.registry.active()
                if self.kind in p.implements and p.name not in self.builtins]

    def __iter__(self) -> Iterator[str]:
        yield from self.builtins
        yield from self.activated()

    def __len__(self) -> int:
        return len(self.builtins) + len(self.activated())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self.builtins or valid_name(name))
