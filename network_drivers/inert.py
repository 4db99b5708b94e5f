"""A driver with nothing to do: the base of `host` and `none`.

Both predefined networks need no bridge, no address and no port work; they differ only
in where the container's network namespace is (the host's, or a private one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from plugins.network_contract import (
    DriverContext,
    Endpoint,
    InvalidNetworkOption,
    NetworkConfig,
    PublishedPort,
)


@attrs.define(eq=False)
class InertDriver:
    name: str
    network: str = ""  # the predefined network it serves, for messages
    uses_ipam: bool = False
    singleton: bool = True

    async def setup(self, context: DriverContext) -> None:
        return None

    def validate_options(self, options: Mapping[str, str]) -> dict[str, str]:
        if options:
            raise InvalidNetworkOption(f"the {self.network or self.name} network takes no options")
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
