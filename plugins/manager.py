"""Finding plugins and keeping their drivers by name.

Every plugin, the built-in drivers included, is a module named by an entry point in
the `moorage.plugins` group. moorage's own distribution declares its built-ins there
(`log_drivers.builtins`, `network_drivers.builtins`, `volume_drivers.builtins`) and
they are registered first; then every other installed distribution's, unless
`MOORAGE_DISABLE_PLUGIN_AUTOLOAD` is set, which leaves only the built-ins.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Protocol, TypeVar

import pluggy

from plugins import hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "moorage.plugins"
AUTOLOAD_SWITCH = "MOORAGE_DISABLE_PLUGIN_AUTOLOAD"
#: The distribution whose entry points are the built-in drivers (always loaded).
OWN_DISTRIBUTION = "moorage"


class BuiltinsNotInstalled(RuntimeError):
    """moorage's own entry points are missing: the package is not installed."""


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _entry_points() -> tuple[list[metadata.EntryPoint], list[metadata.EntryPoint]]:
    """The `moorage.plugins` entry points: moorage's own, and every other distribution's."""
    own: list[metadata.EntryPoint] = []
    others: list[metadata.EntryPoint] = []
    for dist in metadata.distributions():
        mine = _normalized(dist.metadata["Name"] or "") == OWN_DISTRIBUTION
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                (own if mine else others).append(ep)
    return own, others


def load_plugin_manager(*, autoload: bool | None = None) -> pluggy.PluginManager:
    """A plugin manager with the hook specs, the built-ins and (unless switched off)
    every other plugin installed under the `moorage.plugins` entry-point group.

    Registration order is what makes "a later plugin replaces an earlier one" put
    third-party drivers over the built-ins (see `drivers_by_name`).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if autoload is None:
        autoload = not os.environ.get(AUTOLOAD_SWITCH)
    own, others = _entry_points()
    if not own:
        raise BuiltinsNotInstalled(
            f"no {ENTRY_POINT_GROUP} entry points of the {OWN_DISTRIBUTION} distribution: its "
            "built-in drivers register through them, so install it (pip install -e .)")
    _register(pm, own)
    loaded = _register(pm, others) if autoload else 0
    if loaded:
        log.info("loaded %d plugin(s) from the %s entry points", loaded, ENTRY_POINT_GROUP)
    pm.check_pending()
    return pm


def _register(pm: pluggy.PluginManager, entry_points: list[metadata.EntryPoint]) -> int:
    """Load and register each entry point's module, in order; returns how many."""
    count = 0
    for ep in entry_points:
        if pm.get_plugin(ep.name) is not None:
            continue  # the same distribution seen twice on sys.path (an egg-info beside it)
        pm.register(ep.load(), name=ep.name)
        count += 1
    return count


class Named(Protocol):
    @property
    def name(self) -> str: ...


D = TypeVar("D", bound=Named)


def drivers_by_name(kind: str, results: Iterable[Sequence[D]]) -> dict[str, D]:
    """One hook's drivers by name: `kind` is "log", "volume" or "network", `results`
    what `pm.hook.moorage_<kind>_drivers(...)` returned.

    pluggy calls the newest registration first, so the results are walked backwards:
    a later plugin's driver replaces an earlier one's of the same name (third-party
    packages load after the built-ins), and the replacement is logged.
    """
    drivers: dict[str, D] = {}
    for provided in reversed(list(results)):
        for driver in provided:
            if driver.name in drivers:
                log.info("%s driver %r is replaced by a plugin", kind, driver.name)
            drivers[driver.name] = driver
    return drivers
