"""An IpamDriver plugin seen through `plugins.ipam_contract`.

    request_pool     IpamDriver.RequestPool {AddressSpace, Pool, SubPool, Options, V6}
    release_pool     IpamDriver.ReleasePool {PoolID}
    request_address  IpamDriver.RequestAddress {PoolID, Address, Options}; the
                     gateway's carries RequestAddressType com.docker.network.gateway
    release_address  IpamDriver.ReleaseAddress {PoolID, Address}

`GetCapabilities` and `GetDefaultAddressSpaces` are asked at the first use; the local
default address space names the pools moord asks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs

from engine.docker_plugins.adapter import Call, PluginAdapter, answer_or_nothing
from engine.docker_plugins.registry import IPAM, PluginRegistry
from engine.docker_plugins.tables import DriverTable
from plugins.ipam_contract import IpamDriver, IpamDriverError, PoolGrant

GATEWAY_OPTIONS = {"RequestAddressType": "com.docker.network.gateway"}


@attrs.define(eq=False)
class RemoteIpamDriver(PluginAdapter):
    """The IPAM driver of the Docker plugin called `name`."""

    kind: ClassVar[str] = IPAM
    noun: ClassVar[str] = "IPAM"
    error: ClassVar[type[Exception]] = IpamDriverError

    _space: str = attrs.field(default="LocalDefault", kw_only=True)

    async def introduce(self, call: Call) -> None:
        await answer_or_nothing(call, "IpamDriver.GetCapabilities")
        spaces = await answer_or_nothing(call, "IpamDriver.GetDefaultAddressSpaces")
        self._space = str(spaces.get("LocalDefaultAddressSpace") or self._space)

    async def request_pool(self, subnet: str, ip_range: str, options: Mapping[str, str],
                           v6: bool) -> PoolGrant:
        await self.introduced()  # the address space comes from GetDefaultAddressSpaces
        answer = await self.call("RequestPool", {"AddressSpace": self._space, "Pool": subnet,
                                                 "SubPool": ip_range, "Options": dict(options),
                                                 "V6": v6})
        data = answer.get("Data") or {}
        return PoolGrant(self.required(answer, "PoolID", "RequestPool"),
                         self.required(answer, "Pool", "RequestPool"),
                         str(data.get("com.docker.network.gateway") or ""))

    async def release_pool(self, pool_id: str) -> None:
        await self.call("ReleasePool", {"PoolID": pool_id})

    async def request_address(self, pool_id: str, address: str = "", *,
                              gateway: bool = False) -> str:
        answer = await self.call("RequestAddress", {
            "PoolID": pool_id, "Address": address,
            "Options": dict(GATEWAY_OPTIONS) if gateway else {}})
        return self.required(answer, "Address", "RequestAddress")

    async def release_address(self, pool_id: str, address: str) -> None:
        await self.call("ReleaseAddress", {"PoolID": pool_id, "Address": address})


def ipam_driver_table(registry: PluginRegistry) -> DriverTable[IpamDriver]:
    """Docker IPAM plugins by name (moord's own IPAM is `default`, not in the table)."""
    return DriverTable({}, registry, IPAM, lambda name: RemoteIpamDriver(name, registry))
