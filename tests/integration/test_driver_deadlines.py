"""No driver can stall moord (docs/plugins.md, "Deadlines").

A third-party package (tests/plugins/moorage_hangdriver) brings a network driver and a
volume driver whose calls block their thread outright. While their calls are
outstanding, `docker ps`, a container on the default bridge, a bridge network and a
volume of the local driver all work; then each hung request fails with an error that names the driver and
the call, and once the driver answers again the same command works.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.daemon import DOCKER_CLI, Moord
from tests.support.hang_plugin import hang_plugin_installed

DEADLINE = 30  # moord's --driver-timeout in this test (seconds)


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    """Until `path` exists (the driver entered its blocking call)."""
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the request ended before the driver was called:\n"
                                 f"{proc.communicate()}")
        if time.monotonic() > end:
            raise AssertionError(f"the driver was never called ({path} missing)")
        time.sleep(0.1)


def test_a_hung_driver_delays_nothing_else(fresh_moord: Callable[[], Moord]) -> None:
    with hang_plugin_installed():
        d = fresh_moord()
        d.start("--driver-timeout", str(DEADLINE))
        d.import_busybox()
        net_dir = d.data_root / "state" / "network-drivers" / "hangnet"
        vol_dir = d.data_root / "plugins" / "hangvol"

        def docker_bg(*args: str) -> subprocess.Popen[str]:
            return subprocess.Popen([DOCKER_CLI, *args], env=d.env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        hung_net = docker_bg("network", "create", "-d", "hangnet", "hang1")
        hung_vol = docker_bg("volume", "create", "-d", "hangvol", "hv1")
        try:
            _wait_for(net_dir / "entered-create_network-hang1", hung_net)
            _wait_for(vol_dir / "entered-create-hv1", hung_vol)

            # everything else goes on while both drivers are stuck
            assert "CONTAINER ID" in d.docker("ps", "-a").stdout
            out = d.docker("run", "--rm", "busybox", "sh", "-c", "echo alive; ip -4 -o addr show eth0")
            assert "alive" in out.stdout
            assert "inet " in out.stdout
            d.docker("network", "create", "plainnet")
            assert "plainnet" in d.docker("network", "ls", "--format", "{{.Name}}").stdout
            d.docker("volume", "create", "plain")
            assert "plain" in d.docker("volume", "ls", "-q").stdout
            assert hung_net.poll() is None, "the hung network create ended too early"
            assert hung_vol.poll() is None, "the hung volume create ended too early"

            # the hung requests end with an error naming the driver and the call
            _, vol_err = hung_vol.communicate(timeout=DEADLINE * 4)
            assert hung_vol.returncode != 0
            assert f"volume driver 'hangvol' did not answer create within {DEADLINE} s" in vol_err
            _, net_err = hung_net.communicate(timeout=DEADLINE * 4)
            assert hung_net.returncode != 0
            assert (f"network driver 'hangnet' did not answer create_network within {DEADLINE} s"
                    in net_err)
            # and left nothing behind
            assert "hang1" not in d.docker("network", "ls", "--format", "{{.Name}}").stdout
            assert "hv1" not in d.docker("volume", "ls", "-q").stdout
        finally:
            for directory in (net_dir, vol_dir):
                directory.mkdir(parents=True, exist_ok=True)
                (directory / "release").touch()
            for proc in (hung_net, hung_vol):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

        # the drivers answer again: the same commands work
        d.docker("network", "create", "-d", "hangnet", "hang1")
        d.docker("volume", "create", "-d", "hangvol", "hv1")
        assert "hv1" in d.docker("volume", "ls", "-q").stdout
        d.docker("network", "rm", "hang1")
        d.docker("volume", "rm", "hv1")
        d.cleanup()
