"""Reading a CNI network configuration list (a conflist) and deriving each plugin's
configuration from it, as the CNI spec says a runtime must.

A conflist is `{"cniVersion", "name", "plugins": [{"type": ..., ...}, ...]}` (a single
plugin's `.conf`, without `plugins`, is accepted too and treated as a list of one). Per
plugin, the runtime adds `name` and `cniVersion` from the list, `prevResult` (the result
of the plugin before it, for ADD; the cached result, for DEL and CHECK) and, for each
capability the plugin declares in `capabilities`, the matching `runtimeConfig` entry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from plugins.network_contract import InvalidNetworkOption

#: the versions whose result format (IPs as `address`, `interfaces`) moord understands
SUPPORTED_VERSIONS = frozenset({"0.3.0", "0.3.1", "0.4.0", "1.0.0"})
_PLUGIN_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@attrs.frozen
class ConfList:
    """A checked conflist: its name, version and plugins (the raw JSON objects)."""

    name: str
    cni_version: str
    plugins: tuple[Mapping[str, Any], ...]
    disable_check: bool = False

    def to_json(self) -> str:
        return json.dumps({"cniVersion": self.cni_version, "name": self.name,
                           "disableCheck": self.disable_check, "plugins": list(self.plugins)})

    def plugin_config(self, index: int, *, prev_result: Mapping[str, Any] | None,
                      runtime_config: Mapping[str, Any]) -> dict[str, Any]:
        """The stdin of plugin `index`: its own keys plus what the runtime must add."""
        plugin = self.plugins[index]
        config = {**plugin, "cniVersion": self.cni_version, "name": self.name}
        if prev_result is not None:
            config["prevResult"] = prev_result
        wanted = {key: value for key, value in runtime_config.items()
                  if plugin.get("capabilities", {}).get(key)}
        if wanted:
            config["runtimeConfig"] = wanted
        return config


def parse(text: str, *, where: str = "conflist") -> ConfList:
    """Check a conflist's JSON; the message of `InvalidNetworkOption` says what is wrong."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidNetworkOption(f"{where}: not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidNetworkOption(f"{where}: a JSON object is expected")
    plugins = raw.get("plugins")
    if plugins is None and "type" in raw:  # a single plugin's .conf
        plugins = [{k: v for k, v in raw.items() if k not in ("cniVersion", "name")}]
    if not isinstance(plugins, list) or not plugins:
        raise InvalidNetworkOption(f"{where}: \"plugins\" must be a non-empty list")
    version = raw.get("cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise InvalidNetworkOption(f"{where}: cniVersion {version!r} is not supported "
                                   f"({', '.join(sorted(SUPPORTED_VERSIONS))})")
    name = raw.get("name")
    if not isinstance(name, str) or not _NETWORK_NAME.match(name):
        raise InvalidNetworkOption(f"{where}: \"name\" must be letters, digits, '_', '.', '-'")
    for i, plugin in enumerate(plugins):
        if not isinstance(plugin, dict):
            raise InvalidNetworkOption(f"{where}: plugin {i} is not an object")
        kind = plugin.get("type")
        if not isinstance(kind, str) or not _PLUGIN_TYPE.match(kind):
            raise InvalidNetworkOption(f"{where}: plugin {i} has no valid \"type\"")
    return ConfList(name=name, cni_version=version, plugins=tuple(plugins),
                    disable_check=bool(raw.get("disableCheck", False)))


def port_mappings(ports: Sequence[tuple[str, str, int, int]]) -> list[dict[str, Any]]:
    """The `portMappings` capability: (protocol, host IP, host port, container port)."""
    mappings = []
    for protocol, host_ip, host_port, container_port in ports:
        mapping: dict[str, Any] = {"hostPort": host_port, "containerPort": container_port,
                                   "protocol": protocol}
        if host_ip not in ("", "0.0.0.0", "::"):
            mapping["hostIP"] = host_ip
        mappings.append(mapping)
    return mappings


__all__ = ["SUPPORTED_VERSIONS", "ConfList", "parse", "port_mappings"]
