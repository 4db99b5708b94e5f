"""The built-in network drivers' hook, named by moorage's `moorage.plugins` entry point.

A package installed with an entry point in the same group may add drivers or replace
these by name (it loads after this one). Each call makes new driver objects: a driver
keeps per-daemon state.
"""

from __future__ import annotations

from collections.abc import Sequence

from network_drivers.bridge import BridgeDriver
from network_drivers.cni.conflist_driver import CNIDriver
from network_drivers.cni.link_drivers import ipvlan_driver, macvlan_driver
from network_drivers.host import HostDriver
from network_drivers.none import NoneDriver
from plugins import hookimpl
from plugins.network_contract import NetworkDriver


@hookimpl
def moorage_network_drivers() -> Sequence[NetworkDriver]:
    return [BridgeDriver(), HostDriver(), NoneDriver(), CNIDriver(), macvlan_driver(),
            ipvlan_driver()]
