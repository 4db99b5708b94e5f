"""Plugin loading: the built-ins come from moorage's own entry points, always, and
first; other distributions' plugins load after them (unless switched off) and replace
a built-in driver of the same name."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import attrs
import pytest

from plugins import drivers_by_name, hookimpl, load_plugin_manager
from plugins import manager as plugin_manager
from plugins.manager import ENTRY_POINT_GROUP, BuiltinsNotInstalled

BUILTINS = {"moorage.log_drivers", "moorage.network_drivers", "moorage.volume_drivers"}


@attrs.frozen
class Named:
    name: str
    origin: str = ""


class ReplacesJsonFile:
    """A third-party plugin providing a `json-file` of its own and a new driver."""

    @hookimpl
    def moorage_log_drivers(self) -> Sequence[Named]:
        return [Named("json-file", "plugin"), Named("journald", "plugin")]


REPLACING = ReplacesJsonFile()


@attrs.frozen
class FakeDistribution:
    metadata: dict[str, str]
    entry_points: list[metadata.EntryPoint]


def _distribution(name: str, *entry_points: tuple[str, str]) -> FakeDistribution:
    return FakeDistribution({"Name": name}, [metadata.EntryPoint(ep, value, ENTRY_POINT_GROUP)
                                             for ep, value in entry_points])


@pytest.fixture
def third_party_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment lists the third-party distribution before moorage itself."""
    real = list(metadata.distributions())
    plugin = _distribution("moorage-journald", ("journald", f"{__name__}:REPLACING"))

    def distributions() -> list[Any]:
        return [plugin, *real]

    monkeypatch.setattr(plugin_manager.metadata, "distributions", distributions)


def test_builtins_load_with_autoload_off() -> None:
    pm = load_plugin_manager(autoload=False)
    assert {name for name, _ in pm.list_name_plugin()} == BUILTINS
    logs = drivers_by_name("log", pm.hook.moorage_log_drivers())
    assert {"json-file", "k8s-file", "local", "none"} <= set(logs)
    assert set(drivers_by_name("network", pm.hook.moorage_network_drivers())) == {
        "bridge", "host", "null", "cni", "macvlan", "ipvlan"}


def test_the_switch_leaves_only_the_builtins(third_party_first: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOORAGE_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert {name for name, _ in load_plugin_manager().list_name_plugin()} == BUILTINS
    monkeypatch.delenv("MOORAGE_DISABLE_PLUGIN_AUTOLOAD")
    assert {name for name, _ in load_plugin_manager().list_name_plugin()} == {
        *BUILTINS, "journald"}


def test_a_plugin_replaces_a_builtin_by_name(third_party_first: None,
                                              caplog: pytest.LogCaptureFixture) -> None:
    pm = load_plugin_manager(autoload=True)
    with caplog.at_level(logging.INFO, logger="plugins.manager"):
        logs = drivers_by_name("log", pm.hook.moorage_log_drivers())
    assert logs["json-file"] == Named("json-file", "plugin")
    assert logs["journald"] == Named("journald", "plugin")
    assert "none" in logs
    assert "log driver 'json-file' is replaced by a plugin" in caplog.messages


def test_without_moorage_s_own_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin_manager.metadata, "distributions", lambda: [])
    with pytest.raises(BuiltinsNotInstalled, match="pip install"):
        load_plugin_manager()


def test_drivers_by_name_later_plugins_win(caplog: pytest.LogCaptureFixture) -> None:
    first, second = Named("bridge", "first"), Named("bridge", "second")
    with caplog.at_level(logging.INFO, logger="plugins.manager"):
        # pluggy returns the newest registration first
        drivers = drivers_by_name("network", [[second], [first, Named("host")]])
    assert drivers["bridge"] is second
    assert list(drivers) == ["bridge", "host"]
    assert caplog.messages == ["network driver 'bridge' is replaced by a plugin"]
