"""A VolumeDriver plugin through the volume contract: each method is the protocol's call
with Docker's fields, the plugin's errors are the contract's, the driver table finds
plugins by name without I/O, and the services keep that table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.docker_plugins.discovery import PluginDirs
from engine.docker_plugins.networks import RemoteNetworkDriver, network_driver_table
from engine.docker_plugins.registry import PluginRegistry
from engine.docker_plugins.volumes import RemoteVolumeDriver, volume_driver_table
from engine.errors import NotFound
from engine.networks.catalog import NetworkCatalog
from engine.networks.options import NetworkOptions
from engine.volumes.service import VolumeService
from network_drivers.builtins import moorage_network_drivers
from plugins.volume_contract import VolumeDriver, VolumeDriverError, VolumeNotFoundError
from tests.support.fake_plugin import serve_plugin


class FakeVolumes:
    """A VolumeDriver plugin that keeps volumes in a dict."""

    def __init__(self) -> None:
        self.volumes: dict[str, str] = {}

    def __call__(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body.get("Name", "")
        if method == "Plugin.Activate":
            return 200, {"Implements": ["VolumeDriver"]}
        if method == "VolumeDriver.Capabilities":
            return 200, {"Capabilities": {"Scope": "global"}}
        if method == "VolumeDriver.Create":
            if body["Opts"].get("bad"):
                return 200, {"Err": "unsupported option \"bad\""}
            self.volumes[name] = f"/srv/{name}"
            return 200, {}
        if name and name not in self.volumes:
            return 200, {"Err": "volume not found"}
        if method in ("VolumeDriver.Mount", "VolumeDriver.Path"):
            return 200, {"Mountpoint": self.volumes[name]}
        if method == "VolumeDriver.Get":
            return 200, {"Volume": {"Name": name, "Mountpoint": self.volumes[name],
                                    "CreatedAt": "2026-12-07T20:55:15Z", "Status": {"a": 1}}}
        if method == "VolumeDriver.List":
            return 200, {"Volumes": [{"Name": n, "Mountpoint": m} for n, m in self.volumes.items()]}
        if method == "VolumeDriver.Remove":
            del self.volumes[name]
        return 200, {}


def _registry(tmp_path: Path, timeout: float = 10) -> PluginRegistry:
    return PluginRegistry(PluginDirs(tmp_path / "run", (tmp_path / "etc",)), timeout=timeout)


async def test_each_contract_method_is_the_protocols_call(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    with serve_plugin(tmp_path / "run" / "fake.sock", FakeVolumes()) as server:
        driver = RemoteVolumeDriver("fake", registry)
        assert isinstance(driver, VolumeDriver)
        created = await driver.create("v", {"size": "1g"})
        assert (created.name, created.mountpoint, driver.scope) == ("v", "/srv/v", "global")
        assert await driver.mount("v", "c0ffee") == "/srv/v"
        assert await driver.path("v") == "/srv/v"
        await driver.unmount("v", "c0ffee")
        info = await driver.get("v")
        assert (info.mountpoint, info.status, info.created is not None) == ("/srv/v", {"a": "1"}, True)
        assert [v.name for v in await driver.list()] == ["v"]
        await driver.remove("v")
        with pytest.raises(VolumeNotFoundError):
            await driver.get("v")
        with pytest.raises(VolumeDriverError, match='volume plugin fake: Create: unsupported option "bad"'):
            await driver.create("w", {"bad": "1"})
    calls = [(m, b) for m, _h, b in server.requests]
    assert calls[:4] == [("Plugin.Activate", {}), ("VolumeDriver.Capabilities", {}),
                         ("VolumeDriver.Create", {"Name": "v", "Opts": {"size": "1g"}}),
                         ("VolumeDriver.Get", {"Name": "v"})]
    assert ("VolumeDriver.Mount", {"Name": "v", "ID": "c0ffee"}) in calls
    assert ("VolumeDriver.Unmount", {"Name": "v", "ID": "c0ffee"}) in calls


async def test_a_missing_plugin_is_dockers_lookup_error(tmp_path: Path) -> None:
    driver = RemoteVolumeDriver("absent", _registry(tmp_path, timeout=0.3))
    with pytest.raises(NotFound, match='error looking up volume plugin absent: '
                                       'plugin "absent" not found'):
        await driver.create("v", {})


async def test_a_plugin_that_went_away_is_activated_again_when_back(tmp_path: Path) -> None:
    registry = _registry(tmp_path, timeout=0.5)
    sock = tmp_path / "run" / "fake.sock"
    driver = RemoteVolumeDriver("fake", registry)
    with serve_plugin(sock, FakeVolumes()):
        await driver.create("v", {})
    sock.parent.mkdir(parents=True, exist_ok=True)
    with pytest.raises(VolumeDriverError, match="volume plugin fake"):
        await driver.create("w", {})
    assert registry.active() == []
    with serve_plugin(sock, FakeVolumes()) as server:
        await driver.create("w", {})
    assert server.requests[0][0] == "Plugin.Activate"


async def test_the_table_finds_remote_drivers_by_name_without_io(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    local = RemoteVolumeDriver("local", registry)  # stands in for a pluggy driver
    table = volume_driver_table({"local": local}, registry)
    assert table["local"] is local
    assert list(table) == ["local"]
    rclone = table.get("rclone")
    assert isinstance(rclone, RemoteVolumeDriver)
    assert table["rclone"] is rclone
    assert list(table) == ["local"]  # known by name, listed once activated
    assert "anything" in table
    assert "../x" not in table
    assert table.get("../x") is None
    with serve_plugin(tmp_path / "run" / "rclone.sock", FakeVolumes()):
        await rclone.list()
    assert list(table) == ["local", "rclone"]
    assert len(table) == 2


async def test_the_services_keep_the_table_they_are_given(tmp_path: Path) -> None:
    """A copy (`dict(drivers)`) would lose every Docker plugin: they are found by name."""
    registry = _registry(tmp_path)
    volumes = volume_driver_table({}, registry)
    service = await VolumeService.open(tmp_path / "v", volumes, durable=False)
    assert service.drivers is volumes
    builtins = {d.name: d for d in moorage_network_drivers()}
    networks = network_driver_table(builtins, registry, tmp_path / "n")
    catalog = await NetworkCatalog.open(data_root=tmp_path / "n", drivers=networks,
                                        options=NetworkOptions(prefix="dptst"), durable=False)
    assert catalog.drivers is networks
    assert isinstance(catalog.drivers["weave"], RemoteNetworkDriver)
    assert isinstance(service.drivers["rclone"], RemoteVolumeDriver)
