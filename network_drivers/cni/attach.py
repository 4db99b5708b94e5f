"""What every CNI-backed driver does for a container: ADD at join (or CHECK, when a
restarted moord re-joins what survived), DEL at leave, and the `portMappings`
capability's plugins (portmap) run again at publish and unpublish.

Published ports are a second, short chain: `publish` runs only the conflist's plugins
that declare `portMappings`, chained after the cached result of the join (their
`prevResult`), with moord's allocated host ports; `unpublish` deletes them with the
same arguments. The join's own ADD passes them an empty list, which they pass through.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from network_drivers.cni import runner
from network_drivers.cni.cache import CachedAttachment, ResultCache
from network_drivers.cni.conflist import ConfList, port_mappings
from network_drivers.cni.invoke import DEFAULT_CNI_PATH, Invocation, PluginFailed
from plugins.network_contract import (
    Endpoint,
    InvalidNetworkOption,
    NetworkConfig,
    NetworkDriverError,
    PublishedPort,
)

log = logging.getLogger(__name__)

ConfListFor = Callable[[NetworkConfig, Endpoint], Awaitable[ConfList]]


def _key(network: NetworkConfig, endpoint: Endpoint) -> str:
    return f"{network.short_id}-{endpoint.container_id}-{endpoint.ifname}"


def _port_plugins(conf: ConfList) -> range | None:
    """The indexes of the plugins with the `portMappings` capability (a contiguous run
    at the end of the list, as portmap always is), or None."""
    found = [i for i, p in enumerate(conf.plugins) if p.get("capabilities", {}).get("portMappings")]
    return range(found[0], found[-1] + 1) if found else None


def first_address(result: Mapping[str, Any]) -> str:
    """The first IP of a CNI result (`ips[0].address`, e.g. "10.88.0.2/16"), or ""."""
    ips = result.get("ips") or []
    return str(ips[0].get("address", "")) if ips else ""


@attrs.define(eq=False)
class CNIAttachments:
    state_dir: Path
    conflist_for: ConfListFor
    #: where the plugin binaries are looked for
    search_path: Sequence[str] = DEFAULT_CNI_PATH
    #: the address each attachment got, by cache key (what `endpoint_options` shows)
    addresses: dict[str, str] = attrs.field(factory=dict)

    @property
    def results(self) -> ResultCache:
        return ResultCache(self.state_dir / "results")

    def _who(self, endpoint: Endpoint, netns: str | None = None) -> Invocation:
        return Invocation(container_id=endpoint.container_id, netns=netns or endpoint.netns,
                          ifname=endpoint.ifname, search_path=self.search_path)

    async def join(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        key = _key(network, endpoint)
        cached = await self.results.load(key)
        if cached is not None:
            try:
                await runner.check(cached.conflist, self._who(endpoint), cached.runtime_config,
                                   cached.result)
                self.addresses[key] = first_address(cached.result)
                return
            except PluginFailed as exc:
                log.info("CNI CHECK of %s failed (%s): adding it again", key, exc)
                await self._delete(cached, endpoint)
        conf = await self.conflist_for(network, endpoint)
        runtime_config: dict[str, Any] = {"portMappings": []}
        result = await runner.add(conf, self._who(endpoint), runtime_config)
        await self.results.save(key, CachedAttachment(
            conflist=conf, container_id=endpoint.container_id, ifname=endpoint.ifname,
            netns=endpoint.netns, runtime_config=runtime_config, result=result))
        self.addresses[key] = first_address(result)

    async def _delete(self, cached: CachedAttachment, endpoint: Endpoint) -> None:
        try:
            await runner.delete(cached.conflist, self._who(endpoint, cached.netns),
                                cached.runtime_config, cached.result)
        except PluginFailed as exc:
            log.warning("CNI DEL: %s", exc)

    async def leave(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        key = _key(network, endpoint)
        cached = await self.results.load(key)
        if cached is not None:
            await runner.delete(cached.conflist, self._who(endpoint, cached.netns),
                                cached.runtime_config, cached.result)
            await self.results.forget(key)
        else:
            # nothing cached (moord stopped between an ADD and its cache write, or the ADD
            # failed): DEL without a prevResult, which plugins must accept, frees what may
            # be left (host-local's address, say)
            try:
                conf = await self.conflist_for(network, endpoint)
                await runner.delete(conf, self._who(endpoint), {"portMappings": []}, None)
            except (NetworkDriverError, InvalidNetworkOption) as exc:
                log.info("CNI DEL of %s without a cached result: %s", key, exc)
        self.addresses.pop(key, None)

    async def publish(self, network: NetworkConfig, endpoint: Endpoint,
                      ports: Sequence[PublishedPort]) -> None:
        key = _key(network, endpoint)
        await self.unpublish(network, endpoint)
        joined = await self.results.load(key)
        if joined is None or (indexes := _port_plugins(joined.conflist)) is None:
            return  # the conflist forwards no ports
        v4 = [p for p in ports if ":" not in p.host_ip]  # IPv6 loopback is moord's own
        runtime_config: dict[str, Any] = {"portMappings": port_mappings(
            [(p.protocol, p.host_ip, p.host_port, p.container_port) for p in v4])}
        result = await runner.add(joined.conflist, self._who(endpoint), runtime_config,
                                  indexes=indexes, prev_result=joined.result)
        await self.results.save(f"{key}.ports", attrs.evolve(
            joined, runtime_config=runtime_config, result=result))

    async def unpublish(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        key = f"{_key(network, endpoint)}.ports"
        cached = await self.results.load(key)
        if cached is None:
            return
        indexes = _port_plugins(cached.conflist)
        await runner.delete(cached.conflist, self._who(endpoint, cached.netns),
                            cached.runtime_config, cached.result, indexes=indexes)
        await self.results.forget(key)

    def endpoint_options(self, network: NetworkConfig, endpoint: Endpoint) -> dict[str, str]:
        address = self.addresses.get(_key(network, endpoint), "")
        return {"cni.address": address} if address else {}


@attrs.define(eq=False)
class CNIBackedDriver:
    """What the CNI-backed drivers share: the attachment calls go to `CNIAttachments`
    (made at `setup` from the driver's state directory and its `conflist_for`)."""

    attachments: CNIAttachments | None = attrs.field(default=None, kw_only=True)

    def _att(self) -> CNIAttachments:
        if self.attachments is None:
            raise NetworkDriverError("a CNI driver was called before its setup")
        return self.attachments

    async def join(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        await self._att().join(network, endpoint)

    async def leave(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        await self._att().leave(network, endpoint)

    async def publish(self, network: NetworkConfig, endpoint: Endpoint,
                      ports: Sequence[PublishedPort]) -> None:
        await self._att().publish(network, endpoint, ports)

    async def unpublish(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        await self._att().unpublish(network, endpoint)

    async def ready(self) -> None:
        return None

    def network_options(self, network: NetworkConfig) -> dict[str, str]:
        return dict(network.options)

    def endpoint_options(self, network: NetworkConfig, endpoint: Endpoint) -> dict[str, str]:
        return self._att().endpoint_options(network, endpoint)


__all__ = ["CNIAttachments", "CNIBackedDriver", "first_address"]
