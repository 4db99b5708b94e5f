"""The `cni` network driver: a network made by a conflist of the user's.

`docker network create -d cni -o conflist=/etc/cni/net.d/web.conflist web`: the file is
read and checked at create, and a copy is kept with the network (so editing or removing
the file later changes nothing for that network; re-create it to take a new version).
The conflist's own IPAM (host-local, static, dhcp …) gives the addresses, so moord
allocates none: the address a container got is shown in its endpoint's `DriverOpts` as
`cni.address`. Published ports go through the conflist's `portMappings` plugin (portmap).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import attrs
import trio

from network_drivers.cni.attach import CNIAttachments, CNIBackedDriver
from network_drivers.cni.conflist import ConfList, parse
from plugins.network_contract import (
    DriverContext,
    Endpoint,
    InvalidNetworkOption,
    NetworkConfig,
    NetworkDriverError,
)

OPTIONS = frozenset({"conflist"})


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        raise InvalidNetworkOption(f"cni: cannot read conflist {path}: {exc.strerror}") from None


def _keep(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@attrs.define(eq=False)
class CNIDriver(CNIBackedDriver):
    name: str = "cni"
    namespace: Literal["private"] = "private"
    uses_ipam: bool = False
    singleton: bool = False
    state_dir: Path = Path("/nonexistent")

    async def setup(self, context: DriverContext) -> None:
        self.state_dir = context.state_dir
        self.attachments = CNIAttachments(context.state_dir, self._conflist)

    def validate_options(self, options: Mapping[str, str]) -> dict[str, str]:
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise InvalidNetworkOption(f"cni: unknown option {unknown[0]!r} (only 'conflist')")
        path = options.get("conflist", "")
        if not path:
            raise InvalidNetworkOption("cni: -o conflist=/path/to/file.conflist is required")
        if not os.path.isabs(path):
            raise InvalidNetworkOption(f"cni: conflist must be an absolute path, not {path!r}")
        return dict(options)

    def _copy(self, network: NetworkConfig) -> Path:
        return self.state_dir / "networks" / f"{network.id}.conflist"

    async def create_network(self, network: NetworkConfig) -> None:
        copy = self._copy(network)
        if await trio.to_thread.run_sync(copy.exists):
            return  # made before (moord restarted)
        text = await trio.to_thread.run_sync(_read, network.options["conflist"])
        parse(text, where=network.options["conflist"])
        await trio.to_thread.run_sync(_keep, copy, text)

    async def delete_network(self, network: NetworkConfig) -> None:
        await trio.to_thread.run_sync(lambda: self._copy(network).unlink(missing_ok=True))

    async def _conflist(self, network: NetworkConfig, endpoint: Endpoint) -> ConfList:
        copy = self._copy(network)
        try:
            text = await trio.to_thread.run_sync(copy.read_text)
        except FileNotFoundError:
            raise NetworkDriverError(f"cni: the conflist of network {network.name} is "
                                     f"missing ({copy})") from None
        return parse(text, where=str(copy))


__all__ = ["CNIDriver"]
