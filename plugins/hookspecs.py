"""Hook specifications: what a moorage plugin may provide.

Each hook is called once, when moord starts, and returns driver objects; moord keeps
them by name. A later plugin's driver with the same name as an earlier one replaces
it (third-party packages load after the built-ins), so a package can override a
built-in driver deliberately; moord logs when that happens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from plugins.contracts import LogDriver
    from plugins.network_contract import NetworkDriver
    from plugins.volume_contract import VolumeDriver

PROJECT = "moorage"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def moorage_log_drivers() -> Sequence[LogDriver]:
    """Return the log drivers this plugin provides (see `plugins.contracts.LogDriver`).

    A log driver decides where a container's output goes. moord always has conmon
    write the container's output to its own log file first (so nothing is lost while
    moord is down); a driver says whether `docker logs` can read that file back and
    may ship every line somewhere else as moord follows the file.
    """
    raise NotImplementedError


@hookspec
def moorage_volume_drivers(data_root: Path) -> Sequence[VolumeDriver]:
    """Return the volume drivers this plugin provides (see `plugins.volume_contract`).

    `docker volume create -d NAME` and `--mount type=volume,volume-driver=NAME` pick a
    driver by its name; `local` is built in and registered through this same hook.
    `data_root` is moord's data root: `local` keeps its volumes under `volumes/`; a
    third-party driver that keeps files should use `plugins/<its name>/` (an
    implementation may leave the argument out, as pluggy allows).
    """
    raise NotImplementedError


@hookspec
def moorage_network_drivers() -> Sequence[NetworkDriver]:
    """Return the network drivers this plugin provides (see `plugins.network_contract`).

    `docker network create -d NAME` picks a driver by its name; `bridge`, `host` and
    `none` are built in and registered through this same hook.
    """
    raise NotImplementedError
