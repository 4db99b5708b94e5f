"""A volume driver from a pip-installed package, found through the `moorage.plugins`
entry points and used by the volume service like the built-in one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import InvalidParameter
from engine.volumes.parse import parse_mount_requests
from engine.volumes.service import VolumeService, volume_drivers_from
from plugins import load_plugin_manager
from plugins.volume_contract import VolumeDriver
from tests.support.volume_plugin import DRIVER, volume_plugin_installed

pytestmark = pytest.mark.needs_root("installs into the venv, as root")

C1 = "c1" * 32


@pytest.fixture(scope="module")
def plugin() -> Iterator[None]:
    with volume_plugin_installed():
        yield


def test_found_by_entry_point(plugin: None, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    drivers = volume_drivers_from(load_plugin_manager(), tmp_path)
    assert {"local", DRIVER} <= set(drivers)
    assert isinstance(drivers[DRIVER], VolumeDriver)
    monkeypatch.setenv("MOORAGE_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert DRIVER not in volume_drivers_from(load_plugin_manager(), tmp_path)


async def test_used_by_the_service(plugin: None, tmp_path: Path) -> None:
    drivers = volume_drivers_from(load_plugin_manager(), tmp_path)
    service = await VolumeService.open(tmp_path, drivers, durable=False)
    with pytest.raises(InvalidParameter, match="testvol knows only the color option"):
        await service.create("v1", driver=DRIVER, options={"size": "1"})
    volume = await service.create("v1", driver=DRIVER, options={"color": "blue"})
    assert volume.mountpoint == str(tmp_path / "plugins" / DRIVER / "v1" / "data")
    _, status = await service.inspect("v1")
    assert status == {"color": "blue", "mounted": "no"}
    points = await service.claim(C1, parse_mount_requests(binds=["v1:/data"]))
    assert points[0].driver == DRIVER
    assert points[0].mode == ""  # Docker shows "z" for local volumes only
    trace = tmp_path / "plugins" / DRIVER / "v1" / "mounted-by"
    [spec] = await service.mount_for_start(C1, points)
    assert spec.source == volume.mountpoint
    assert trace.read_text() == C1 + "\n"
    assert (await service.inspect("v1"))[1]["mounted"] == "yes"
    await service.unmount_after_stop(C1, points)
    assert not trace.exists()
    await service.release(C1, points, remove_anonymous=True)
    await service.remove("v1")
    assert not (tmp_path / "plugins" / DRIVER / "v1").exists()
    # moord restarted with a volume it has no record of: the driver's list adopts it
    await drivers[DRIVER].create("leftover", {})
    reopened = await VolumeService.open(tmp_path, drivers, durable=False)
    assert reopened.get("leftover").driver == DRIVER
