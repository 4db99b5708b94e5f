"""A Docker volume plugin that hangs stalls only the request that needed it.

The plugin (written here) never answers `VolumeDriver.Create` until the test lets it.
While a `docker volume create -d hang` waits on it, `docker ps` and a container on the
local driver work; the stuck create then fails at moord's deadline with an error that
names the plugin, and nothing of the volume is left.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.daemon import DOCKER_CLI, Moord
from tests.support.fake_plugin import serve_plugin

pytestmark = pytest.mark.integration


def test_a_hung_volume_plugin_delays_nothing_else(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    entered, release = threading.Event(), threading.Event()

    def hang(method: str, _body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "Plugin.Activate":
            return 200, {"Implements": ["VolumeDriver"]}
        if method == "VolumeDriver.Create":
            entered.set()
            release.wait(120)
        return 200, {}

    with serve_plugin(d.root / "plugins" / "hang.sock", hang):
        try:
            d.start("--plugin-socket-dir", str(d.root / "plugins"),
                    "--plugin-spec-dir", str(d.root / "specs"), "--plugin-timeout", "20")
            d.import_busybox()
            stuck = subprocess.Popen([DOCKER_CLI, "volume", "create", "-d", "hang", "slow"],
                                     env=d.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
            try:
                assert entered.wait(60), d.log_tail()
                d.docker("ps")
                ran = d.docker("run", "--rm", "-v", "fast:/data", "busybox", "sh", "-c",
                               "echo ok > /data/f && cat /data/f", timeout=120)
                assert ran.stdout == "ok\n"
                assert stuck.poll() is None, "the create did not wait on the hung plugin"
                _out, err = stuck.communicate(timeout=120)
            finally:
                if stuck.poll() is None:
                    stuck.kill()
            assert stuck.returncode != 0
            assert "volume plugin hang" in err, err
            assert "no answer from" in err, err
            names = d.docker("volume", "ls", "-q").stdout.split()
            assert "slow" not in names
            assert "fast" in names
        finally:
            release.set()
            d.stop()
