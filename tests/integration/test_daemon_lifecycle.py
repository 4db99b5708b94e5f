"""moord's own lifecycle: TERM finishes what is in flight, HUP reloads, the pidfile."""

from __future__ import annotations

import signal
import stat
import subprocess
import time
from collections.abc import Callable

from tests.support.daemon import DOCKER_CLI, Moord, inspect


def test_term_lets_a_stop_in_flight_finish(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    d.start()
    d.import_busybox()
    d.docker("run", "-d", "--name", "slow", "busybox", "sleep", "600")
    # sleep ignores TERM as PID 1: the stop takes its whole 3 s grace period
    stopper = subprocess.Popen([DOCKER_CLI, "stop", "-t", "3", "slow"], env=d.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.8)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    out, err = stopper.communicate(timeout=30)
    assert stopper.returncode == 0, err
    assert out.strip() == "slow"
    assert d.proc.wait(timeout=30) == 0
    assert not d.socket_path.exists()
    d.start()
    state = inspect(d, "slow")["State"]
    assert isinstance(state, dict)
    assert state["ExitCode"] == 137
    assert state["StopReason"] == "user"


def test_hup_reloads_the_configuration(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    config = d.root / "daemon.toml"
    config.write_text("restart-delay-initial = 0.1\n")
    d.start("--config-file", str(config))
    # flags (the test daemon's --log-level, --cgroup-parent...) still win over the file
    config.write_text('restart-delay-initial = 0.5\nshutdown-timeout = 5\nsocket-mode = "0600"\n')
    log = d.reload("configuration reloaded")
    assert "configuration reloaded (changed: restart_delay_initial, shutdown_timeout)" in log
    assert "socket_mode only change when moord restarts" in log
    assert d.docker("version").returncode == 0


def test_pidfile_is_written_and_removed(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    d.start()
    pidfile = d.exec_root / "moord.pid"
    assert d.proc is not None
    assert pidfile.read_text().strip() == str(d.proc.pid)
    d.stop()
    assert not pidfile.exists()


def test_data_root_is_closed_to_other_users(fresh_moord: Callable[[], Moord]) -> None:
    """dockerd's modes: the data root 710, containers/ 700, tightened at every start, and a
    container running as an unprivileged user still reads its rootfs and writes its volume."""
    d = fresh_moord()
    d.data_root.mkdir(parents=True, exist_ok=True)
    d.data_root.chmod(0o755)  # as an older moord left it
    d.start()
    d.import_busybox()
    cid = d.docker("run", "-d", "-v", "vol:/data", "busybox", "sleep", "600").stdout.strip()
    assert stat.S_IMODE(d.data_root.stat().st_mode) == 0o710
    assert stat.S_IMODE((d.data_root / "containers").stat().st_mode) == 0o700
    listing = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              "ls", str(d.data_root / "containers")],
                             capture_output=True, text=True, check=False)
    assert listing.returncode != 0, listing.stdout
    assert cid not in listing.stdout
    assert "Permission denied" in listing.stderr
    d.docker("exec", cid, "chmod", "777", "/data")
    out = d.docker("exec", "-u", "65534", cid, "sh", "-c",
                   "cat /etc/passwd >/dev/null && echo hi >/data/f && cat /data/f").stdout
    assert out.strip() == "hi"
    d.docker("rm", "-f", cid)
