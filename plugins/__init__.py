"""moorage's extension points: pluggy hook specifications and the plugin manager.

A driver package (built in or installed with pip) is a module with functions marked
`@hookimpl`, named by an entry point in the `moorage.plugins` group, as pytest finds
its plugins. moorage's own distribution names its built-in drivers there too; the
others are skipped when `MOORAGE_DISABLE_PLUGIN_AUTOLOAD` is set. Hooks are
synchronous: they register drivers; the drivers' own async methods run on moord's
trio loop. The contracts a driver implements are in `plugins.contracts`.
"""

from plugins.hookspecs import hookimpl, hookspec
from plugins.manager import ENTRY_POINT_GROUP, drivers_by_name, load_plugin_manager

__all__ = ["ENTRY_POINT_GROUP", "drivers_by_name", "hookimpl", "hookspec", "load_plugin_manager"]
