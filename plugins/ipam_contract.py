"""The IPAM driver contract: where a network's subnet and its endpoints' addresses come
from when `docker network create --ipam-driver NAME` names one.

moord's own IPAM (`engine/networks/ipam.py`) is the default; an IPAM driver replaces
its choices, not its bookkeeping: moord still records every address it was given, so
two endpoints never share one, and a moord restart asks the driver nothing. Calls, in
Docker's order: `request_pool` and the gateway's `request_address` at network create;
`request_address` for each endpoint before its network driver joins it, and
`release_address` when it leaves; the gateway's `release_address` and `release_pool`
at network remove. Addresses travel as `address/prefix` strings, as Docker's do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs


class IpamDriverError(RuntimeError):
    """The driver refused or failed (the message is the driver's, for the user)."""


@attrs.frozen
class PoolGrant:
    """A pool the driver handed out: its ID for later calls, its subnet (CIDR) and the
    gateway it suggests (`address/prefix`, "" when it says none)."""

    pool_id: str
    subnet: str
    gateway: str = ""


@runtime_checkable
class IpamDriver(Protocol):
    @property
    def name(self) -> str: ...

    async def request_pool(self, subnet: str, ip_range: str, options: Mapping[str, str],
                           v6: bool) -> PoolGrant:
        """A pool: `subnet` is what the user asked for ("" lets the driver choose)."""
        ...

    async def release_pool(self, pool_id: str) -> None: ...

    async def request_address(self, pool_id: str, address: str = "", *,
                              gateway: bool = False) -> str:
        """An address of the pool (`address` if given); `gateway` marks the network's."""
        ...

    async def release_address(self, pool_id: str, address: str) -> None: ...


__all__ = ["IpamDriver", "IpamDriverError", "PoolGrant"]
