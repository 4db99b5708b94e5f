"""The Docker plugins moord has found and activated, by name.

Plugins are activated lazily, as dockerd does for legacy plugins: the first time
something needs plugin `NAME` (a `volume create -d NAME`, an authorization check),
moord looks for its socket or spec file, calls `Plugin.Activate` and keeps what it
`Implements`. A plugin that is not there yet is waited for (the file looked for again
with Docker's back-off) until the deadline; a plugin that stops answering is
forgotten, so the next use finds and activates it afresh (it may have restarted).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

from engine.docker_plugins.client import PluginClient, PluginError, backoff
from engine.docker_plugins.discovery import Endpoint, PluginDirs, PluginSpecError, find, scan

log = logging.getLogger(__name__)

VOLUME = "VolumeDriver"
NETWORK = "NetworkDriver"
IPAM = "IpamDriver"
AUTHZ = "authz"


class PluginNotFound(PluginError):
    """No socket or spec file names the plugin, even after waiting."""


class PluginLacksKind(PluginError):
    """The plugin is there but does not implement the kind asked for."""


@attrs.frozen
class ActivePlugin:
    """An activated plugin: its client and what its `Plugin.Activate` said it implements."""

    name: str
    client: PluginClient
    implements: tuple[str, ...]

    @property
    def endpoint(self) -> Endpoint:
        return self.client.endpoint


@attrs.define(eq=False)
class PluginRegistry:
    """Finds, activates and keeps Docker plugins; `timeout` is the wait and call deadline."""

    dirs: PluginDirs = attrs.field(factory=PluginDirs)
    timeout: float = 30.0
    _active: dict[str, ActivePlugin] = attrs.field(factory=dict)
    _locks: dict[str, trio.Lock] = attrs.field(factory=dict)

    def active(self) -> list[ActivePlugin]:
        """The activated plugins, by name."""
        return [self._active[n] for n in sorted(self._active)]

    async def announced(self) -> list[str]:
        """Every plugin a socket or spec file announces now (activated or not)."""
        return await trio.to_thread.run_sync(scan, self.dirs)

    def forget(self, name: str) -> None:
        """Drop an activated plugin (it stopped answering): the next use activates it again."""
        if self._active.pop(name, None) is not None:
            log.info("Docker plugin %s stopped answering; it will be activated again", name)

    async def get(self, name: str, kind: str) -> ActivePlugin:
        """The activated plugin `name`, which must implement `kind` (e.g. VolumeDriver)."""
        lock = self._locks.setdefault(name, trio.Lock())
        async with lock:
            plugin = self._active.get(name)
            if plugin is None:
                plugin = await self._activate(name)
                self._active[name] = plugin
        if kind not in plugin.implements:
            raise PluginLacksKind(name, "Plugin.Activate",
                                  f"the plugin implements {', '.join(plugin.implements) or 'nothing'}"
                                  f", not {kind}")
        return plugin

    async def _activate(self, name: str) -> ActivePlugin:
        with trio.move_on_after(self.timeout) as waited:
            endpoint = await self._locate(name)
            client = PluginClient(endpoint, timeout=self.timeout)
            answer = await client.call("Plugin.Activate", {})
            implements = answer.get("Implements") or []
            if not isinstance(implements, list):
                raise PluginError(name, "Plugin.Activate", "Implements is not a list")
            log.info("Docker plugin %s activated at %s: %s", name, endpoint.address,
                     ", ".join(map(str, implements)))
            return ActivePlugin(name, client, tuple(str(i) for i in implements))
        assert waited.cancelled_caught
        raise PluginNotFound(name, "Plugin.Activate", f"plugin {name!r} did not answer within "
                             f"{self.timeout:g} s")

    async def _locate(self, name: str) -> Endpoint:
        """The plugin's endpoint, looking again with Docker's back-off until it shows up."""
        retries = 0
        deadline = trio.current_time() + self.timeout
        while True:
            try:
                endpoint = await trio.to_thread.run_sync(find, name, self.dirs)
            except (PluginSpecError, OSError) as exc:
                raise PluginError(name, "lookup", str(exc)) from None
            if endpoint is not None:
                return endpoint
            delay = backoff(retries, self.timeout)
            if trio.current_time() + delay >= deadline:
                raise PluginNotFound(name, "lookup", f"plugin {name!r} not found (no socket in "
                                     f"{self.dirs.socket_dir}, no spec in "
                                     f"{', '.join(map(str, self.dirs.spec_dirs))})")
            log.info("Docker plugin %s not found; looking again in %.0f s", name, delay)
            retries += 1
            await trio.sleep(delay)


def plugin_dirs(socket_dir: str | Path, spec_dirs: Sequence[str]) -> PluginDirs:
    """The directories as the configuration names them."""
    return PluginDirs(Path(socket_dir), tuple(Path(d) for d in spec_dirs))
