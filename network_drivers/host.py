"""The `host` driver: the container shares the host's network namespace.

Nothing to create, join or publish: the container's processes use the host's
interfaces, addresses and ports directly (published ports are discarded, with
Docker's warning, at create time). One predefined network, `host`, uses it.
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
class HostDriver:
    name: str = "host"
    namespace: Literal["host"] = "host"
    uses_ipam: bool = False
    singleton: bool = True

    async def setup(self, context: DriverContext) -> None:
        return None

    def validate_options(self, options: Mapping[str, str]) -> dict[str, str]:
        if options:
            raise InvalidNetworkOption("the host network takes no options")
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
