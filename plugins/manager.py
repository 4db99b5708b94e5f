"""Finding plugins: the built-in drivers, then every installed `moorage.plugins` entry point."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from types import ModuleType

import pluggy

from plugins import hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "moorage.plugins"
AUTOLOAD_SWITCH = "MOORAGE_DISABLE_PLUGIN_AUTOLOAD"


def load_plugin_manager(builtins: Iterable[ModuleType] = (), *,
                        autoload: bool | None = None) -> pluggy.PluginManager:
    """A plugin manager with the hook specs, the `builtins` and (unless switched off)
    every plugin installed under the `moorage.plugins` entry-point group."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module in builtins:
        pm.register(module, name=f"builtin:{module.__name__}")
    if autoload is None:
        autoload = not os.environ.get(AUTOLOAD_SWITCH)
    if autoload:
        count = pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        if count:
            log.info("loaded %d plugin(s) from the %s entry points", count, ENTRY_POINT_GROUP)
    pm.check_pending()
    return pm
