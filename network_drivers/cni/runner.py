"""ADD, DEL and CHECK over a conflist, as the CNI spec orders them.

- ADD runs the plugins in order, each given the previous one's result as `prevResult`;
  the last result is the attachment's. When a plugin fails, the ones before it are
  undone (DEL of the list, best effort) and the failure is raised.
- DEL runs them in reverse order, each given the cached ADD result; it goes on past a
  failing plugin (so the others still clean up) and raises the first failure at the end.
- CHECK runs them in order with the cached result (CNI 0.4.0 and later; a list with
  `disableCheck` is not checked).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from network_drivers.cni.conflist import ConfList
from network_drivers.cni.invoke import Invocation, PluginFailed, run_plugin

log = logging.getLogger(__name__)
_NO_CHECK = frozenset({"0.3.0", "0.3.1"})


async def add(conf: ConfList, who: Invocation, runtime_config: Mapping[str, Any],
              indexes: range | None = None,
              prev_result: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """ADD of the list (or of the plugins at `indexes`, chained after `prev_result`)."""
    indexes = indexes if indexes is not None else range(len(conf.plugins))
    prev: dict[str, Any] | None = dict(prev_result) if prev_result is not None else None
    for i in indexes:
        config = conf.plugin_config(i, prev_result=prev, runtime_config=runtime_config)
        try:
            answered = await run_plugin("ADD", who, config)
        except PluginFailed:
            try:
                await delete(conf, who, runtime_config, prev, indexes=range(indexes.start, i + 1))
            except PluginFailed as exc:
                log.warning("undoing a failed CNI ADD: %s", exc)
            raise
        assert answered is not None
        prev = answered
    return prev or {}


async def delete(conf: ConfList, who: Invocation, runtime_config: Mapping[str, Any],
                 prev_result: Mapping[str, Any] | None, indexes: range | None = None) -> None:
    indexes = indexes if indexes is not None else range(len(conf.plugins))
    first: PluginFailed | None = None
    for i in reversed(indexes):
        config = conf.plugin_config(i, prev_result=prev_result, runtime_config=runtime_config)
        try:
            await run_plugin("DEL", who, config)
        except PluginFailed as exc:
            first = first or exc
    if first is not None:
        raise first


async def check(conf: ConfList, who: Invocation, runtime_config: Mapping[str, Any],
                prev_result: Mapping[str, Any], indexes: range | None = None) -> None:
    """Raise `PluginFailed` when the attachment is not what the ADD made."""
    if conf.disable_check or conf.cni_version in _NO_CHECK:
        return
    for i in indexes if indexes is not None else range(len(conf.plugins)):
        config = conf.plugin_config(i, prev_result=prev_result, runtime_config=runtime_config)
        await run_plugin("CHECK", who, config)


__all__ = ["add", "check", "delete"]
