"""What every adapter of a plugin kind shares: one call through the registry, with the
plugin's errors turned into the contract's error type in words that name the plugin,
and a plugin that is nowhere (after the wait) a 404 in dockerd's words."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import attrs

from engine.docker_plugins.client import PluginError, PluginUnreachable
from engine.docker_plugins.registry import PluginNotFound, PluginRegistry
from engine.errors import NotFound

log = logging.getLogger(__name__)

Call = Callable[[str, Mapping[str, Any]], Awaitable[dict[str, Any]]]


async def answer_or_nothing(call: Call, method: str) -> dict[str, Any]:
    """An optional call (capabilities): {} when the plugin refuses it, as dockerd assumes
    defaults; a plugin that cannot be reached is still an error."""
    try:
        return await call(method, {})
    except PluginUnreachable:
        raise
    except PluginError:
        return {}


@attrs.define(eq=False)
class PluginAdapter:
    """The plugin called `name`, for the kind (`VolumeDriver` …) a subclass names."""

    kind: ClassVar[str]
    noun: ClassVar[str]  # "volume", "network": in messages, as dockerd words them
    error: ClassVar[type[Exception]]

    _name: str
    registry: PluginRegistry
    _introduced: bool = attrs.field(default=False, kw_only=True)

    @property
    def name(self) -> str:
        return self._name

    def missing(self) -> str:
        """dockerd's words for a plugin that is nowhere (a 404)."""
        return f'plugin "{self._name}" not found'

    async def introduce(self, call: Call) -> None:
        """Called once, before the first call (dockerd asks for capabilities then)."""

    def required(self, answer: Mapping[str, Any], key: str, method: str) -> str:
        """A field the answer must carry, as a string (its absence is the plugin's fault)."""
        value = str(answer.get(key) or "")
        if not value:
            raise self.error(f"{self.noun} plugin {self._name}: {method} gave no {key}")
        return value

    async def introduced(self) -> None:
        """Activate the plugin and introduce it, if that has not happened yet (for a call
        whose payload depends on what `introduce` learnt)."""
        if not self._introduced:
            await self.call("", {})

    async def call(self, method: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """`Kind.method` on the plugin; its failures as the contract's error. (No method:
        only the activation and the introduction.)"""
        try:
            plugin = await self.registry.get(self._name, self.kind)
            if not self._introduced:
                await self.introduce(plugin.client.call)
                self._introduced = True
            if not method:
                return {}
            return await plugin.client.call(f"{self.kind}.{method}", payload)
        except PluginNotFound as exc:
            log.info("%s plugin %s: %s", self.noun, self._name, exc.message)
            raise NotFound(self.missing()) from None
        except PluginUnreachable as exc:
            self.registry.forget(self._name)
            raise self.error(f"{self.noun} plugin {self._name}: {exc.message}") from None
        except PluginError as exc:
            raise self.error(f"{self.noun} plugin {self._name}: {method}: {exc.message}") from None
