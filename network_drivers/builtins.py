"""The built-in network drivers, registered through the hook third-party drivers use.

moord passes this module to `plugins.load_plugin_manager`; a package installed with an
entry point in the `moorage.plugins` group may add drivers or replace these by name.
Each call makes new driver objects: a driver keeps per-daemon state.
"""

from __future__ import annotations

from collections.abc import Sequence

from network_drivers.bridge import BridgeDriver
from network_drivers.host import HostDriver
from network_drivers.none import NoneDriver
from plugins import hookimpl
from plugins.network_contract import NetworkDriver


@hookimpl
def moorage_network_drivers() -> Sequence[NetworkDriver]:
    return [BridgeDriver(), HostDriver(), NoneDriver()]
