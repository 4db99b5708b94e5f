"""The `null` driver behind the predefined `none` network: a private namespace, only `lo`.

The OCI runtime makes the namespace (crun brings its loopback up), so a `--network
none` container costs no netlink work at all; nothing can join it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import attrs

from plugins.network_contract import (
    DriverContext,
    Endpoint,
    InvalidNetworkOption,
    NetworkConfig,
    PublishedPort,
)


@attrs.define(eq=False)
class NoneDriver:
    name: str = "null"
    namespace: Literal["isolated"] = "isolated"
    uses_ipam: bool = False
    singleton: bool = True

    async def setup(self, context: DriverContext) -> None:
        return None

    def validate_options(self, options: Mapping[str, str]) -> dict[str, str]:
        if options:
            raise InvalidNetworkOption("the none network takes no options")
        return {}

    async def create_network(self, network: NetworkConfig) -> None:
        return None

    async def delete_network(self, network: NetworkConfig) -> None:
        return None

    async def join(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        return None

    async def leave(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        return None

    async def publish(self, network: NetworkConfig, endpoint: Endpoint,
                      ports: Sequence[PublishedPort]) -> None:
        return None

    async def unpublish(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        return None

    async def ready(self) -> None:
        return None

    def network_options(self, network: NetworkConfig) -> dict[str, str]:
        return {}

    def endpoint_options(self, network: NetworkConfig, endpoint: Endpoint) -> dict[str, str]:
        return {}
