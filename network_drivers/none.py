"""The `null` driver behind the predefined `none` network: a private namespace, only `lo`.

The OCI runtime makes the namespace (crun brings its loopback up), so a `--network
none` container costs no netlink work at all; nothing can join it.
"""

from __future__ import annotations

from typing import Literal

import attrs

from network_drivers.inert import InertDriver


@attrs.define(eq=False)
class NoneDriver(InertDriver):
    name: str = "null"
    network: str = "none"
    namespace: Literal["isolated"] = "isolated"
