"""The `host` driver: the container shares the host's network namespace.

Nothing to create, join or publish: the container's processes use the host's
interfaces, addresses and ports directly (published ports are discarded, with
Docker's warning, at create time). One predefined network, `host`, uses it.
"""

from __future__ import annotations

from typing import Literal

import attrs

from network_drivers.inert import InertDriver


@attrs.define(eq=False)
class HostDriver(InertDriver):
    name: str = "host"
    network: str = "host"
    namespace: Literal["host"] = "host"
