"""Log drivers are plugins: a third-party package installed with pip adds one.

The package in tests/plugins/moorage_syslog is installed into moord's environment with
pip (real entry-point discovery, nothing registered by hand), a fresh moord is started
so that it loads it, and a container logging with `--log-driver syslog` sends every line
to a UDP listener on 127.0.0.1 that the test holds, while `docker logs` keeps working.
`MOORAGE_DISABLE_PLUGIN_AUTOLOAD=1` in moord's environment must make the driver unknown.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DOCKER_CLI, REPO, Moord

PACKAGE_SRC = REPO / "tests" / "plugins" / "moorage_syslog"
DISTRIBUTION = "moorage-syslog"
INSTALL_LOCK = Path(tempfile.gettempdir()) / "moorage-syslog-plugin.lock"
LINES = 2000
SO_RCVBUFFORCE = 33  # Linux; not in the socket module
# <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG (as Docker's rfc5424 driver lays it out)
RFC5424 = re.compile(rb"<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) - (.*)", re.DOTALL)
DAEMON_INFO, DAEMON_ERR = 3 * 8 + 6, 3 * 8 + 3


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def syslog_plugin() -> Iterator[None]:
    """moorage-syslog installed into this venv (so a moord started now finds it), and
    uninstalled afterwards. It is built from a copy: pip builds in the source tree.

    The venv is shared by every test run on the machine: a lock keeps two runs from
    installing and uninstalling the package under each other's feet.
    """
    with open(INSTALL_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield from _installed()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _installed() -> Iterator[None]:
    if importlib.util.find_spec("wheel") is None:
        setuptools_version = _pip("show", "setuptools").stdout
        pytest.fail("building the plugin package with --no-build-isolation needs `wheel` in the "
                    f"venv (setuptools here: {setuptools_version.splitlines()[1:2]}); "
                    ".venv/bin/pip install wheel", pytrace=False)
    with tempfile.TemporaryDirectory(prefix="moorage-syslog-") as tmp:
        copy = Path(tmp) / "moorage_syslog"
        shutil.copytree(PACKAGE_SRC, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        installed = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(copy))
        assert installed.returncode == 0, f"pip install failed:\n{installed.stdout}\n{installed.stderr}"
    try:
        yield
    finally:
        removed = _pip("uninstall", "-y", DISTRIBUTION)
        assert removed.returncode == 0, f"pip uninstall failed:\n{removed.stderr}"


class UdpListener:
    """Datagrams sent to 127.0.0.1:<port>, collected by a thread until closed."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # a burst of thousands of datagrams must not overflow the default ~200 KiB buffer
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closing.is_set():
            try:
                data = self.sock.recv(70_000)
            except TimeoutError:
                continue
            with self._lock:
                self.datagrams.append(data)

    def received(self) -> list[bytes]:
        with self._lock:
            return list(self.datagrams)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[bytes]:
        """The datagrams once `count` have come (or what came within `timeout`)."""
        deadline = time.monotonic() + timeout
        while len(self.received()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received()

    def close(self) -> None:
        self._closing.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[UdpListener]:
    udp = UdpListener()
    try:
        yield udp
    finally:
        udp.close()


def _started(make: Callable[[], Moord]) -> Moord:
    d = make()
    d.start()
    d.import_busybox()
    return d


def _log_drivers(d: Moord) -> list[str]:
    drivers = json.loads(d.docker("info", "--format", "{{json .Plugins.Log}}").stdout)
    assert isinstance(drivers, list)
    return drivers


def _release(d: Moord, cid: str) -> subprocess.CompletedProcess[bytes]:
    """Send the container its go-ahead on stdin, through `docker attach`.

    The container is already running (and its start recorded) when it begins to write,
    so what is tested is shipping, not the moment a run starts (see the xfail below).
    """
    return subprocess.run([DOCKER_CLI, "attach", cid], input=b"go\n", env=d.env,
                          capture_output=True, timeout=120, check=False)


def test_syslog_driver_from_a_pip_installed_package_ships_every_line(
        syslog_plugin: None, fresh_moord: Callable[[], Moord], listener: UdpListener) -> None:
    d = _started(fresh_moord)
    assert "syslog" in _log_drivers(d)
    script = ("read go; awk 'BEGIN { for (i = 0; i < " + str(LINES) + "; i++) { "
              "printf \"out %04d\\n\", i; printf \"err %04d\\n\", i > \"/dev/stderr\" } }'")
    cid = d.docker("run", "-d", "-i", "--log-driver", "syslog",
                   "--log-opt", f"syslog-address=udp://127.0.0.1:{listener.port}",
                   "--log-opt", "tag=web", "busybox", "sh", "-c", script).stdout.strip()
    attached = _release(d, cid)
    assert attached.returncode == 0, attached.stderr
    # it exits right after its burst: the lines still unshipped then must go out too
    got = listener.wait_for(2 * LINES)

    parsed = [RFC5424.fullmatch(g) for g in got]
    assert all(parsed), [g for g, p in zip(got, parsed, strict=True) if p is None][:3]
    messages = [p for p in parsed if p is not None]
    assert {m.group(4) for m in messages} == {b"web"}  # APP-NAME is the tag
    assert {m.group(6) for m in messages} == {b"web"}  # and so is MSGID, as in Docker
    out = [m.group(7) for m in messages if int(m.group(1)) == DAEMON_INFO]
    err = [m.group(7) for m in messages if int(m.group(1)) == DAEMON_ERR]
    assert out == [b"out %04d" % i for i in range(LINES)]
    assert err == [b"err %04d" % i for i in range(LINES)]
    assert len(got) == 2 * LINES

    # dual logging: moord kept its file, so `docker logs` still has it all, streams apart
    logs = d.docker("logs", cid)
    assert logs.stdout == "".join(f"out {i:04d}\n" for i in range(LINES))
    assert logs.stderr == "".join(f"err {i:04d}\n" for i in range(LINES))
    inspect = json.loads(d.docker("inspect", cid).stdout)[0]
    assert inspect["HostConfig"]["LogConfig"] == {
        "Type": "syslog",
        "Config": {"syslog-address": f"udp://127.0.0.1:{listener.port}", "tag": "web"},
    }


def test_syslog_driver_options_are_checked_at_create(
        syslog_plugin: None, fresh_moord: Callable[[], Moord]) -> None:
    d = _started(fresh_moord)
    refused = d.docker("create", "--log-driver", "syslog", "--log-opt", "bogus=1", "busybox",
                       check=False)
    assert refused.returncode != 0
    assert "unknown log opt 'bogus' for syslog log driver" in refused.stderr
    refused = d.docker("create", "--log-driver", "syslog", "--log-opt",
                       "syslog-address=tcp+tls://127.0.0.1:6514", "busybox", check=False)
    assert "syslog-address: unsupported scheme" in refused.stderr


def test_autoload_switch_leaves_installed_plugins_out(
        syslog_plugin: None, fresh_moord: Callable[[], Moord],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOORAGE_DISABLE_PLUGIN_AUTOLOAD", "1")
    d = _started(fresh_moord)  # moord inherits this process's environment
    monkeypatch.delenv("MOORAGE_DISABLE_PLUGIN_AUTOLOAD")
    drivers = _log_drivers(d)
    assert "syslog" not in drivers
    assert {"json-file", "none"} <= set(drivers)
    refused = d.docker("run", "--rm", "--log-driver", "syslog", "busybox", "true", check=False)
    assert refused.returncode != 0
    assert "logger: no log driver named 'syslog' is registered" in refused.stderr


def test_a_runs_very_first_lines_are_shipped(
        syslog_plugin: None, fresh_moord: Callable[[], Moord], listener: UdpListener) -> None:
    d = _started(fresh_moord)
    runs = 10
    for i in range(runs):
        d.docker("run", "--rm", "--log-driver", "syslog",
                 "--log-opt", f"syslog-address=udp://127.0.0.1:{listener.port}",
                 "busybox", "echo", f"first {i}")
    got = listener.wait_for(runs, timeout=10)
    assert sorted(g.rsplit(b" - ", 1)[-1] for g in got) == [b"first %d" % i for i in range(runs)]


def test_a_moord_restart_ships_nothing_twice(
        syslog_plugin: None, fresh_moord: Callable[[], Moord], listener: UdpListener) -> None:
    """Shipping resumes from its checkpoint after moord comes back, neither repeating nor
    skipping: lines written while moord was down go out once it is back."""
    d = _started(fresh_moord)
    script = "i=0; while [ $i -lt 60 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done"
    d.docker("run", "-d", "--name", "shipper", "--log-driver", "syslog",
             "--log-opt", f"syslog-address=udp://127.0.0.1:{listener.port}",
             "busybox", "sh", "-c", script)
    listener.wait_for(15)
    d.kill9()
    time.sleep(1.0)
    d.start()
    got = listener.wait_for(60, timeout=30)
    ticks = [g.rsplit(b" - ", 1)[-1] for g in got]
    assert ticks == [b"tick %d" % i for i in range(60)]


def test_lines_of_a_container_that_ended_while_moord_was_away_are_shipped(
        syslog_plugin: None, fresh_moord: Callable[[], Moord], listener: UdpListener,
        tmp_path: Path) -> None:
    """A container that logs and exits while moord is down (no restart policy, so no new
    run ships for it): its last lines go out once moord is back."""
    d = _started(fresh_moord)
    gate = tmp_path / "gate"
    gate.mkdir()
    script = ("i=0; while [ $i -lt 10 ]; do echo tick $i; i=$((i+1)); done; "
              "while [ ! -e /gate/go ]; do sleep 0.1; done; "
              "while [ $i -lt 20 ]; do echo tick $i; i=$((i+1)); done; touch /gate/done")
    d.docker("run", "-d", "--name", "leaver", "--log-driver", "syslog", "-v", f"{gate}:/gate",
             "--log-opt", f"syslog-address=udp://127.0.0.1:{listener.port}",
             "busybox", "sh", "-c", script)
    listener.wait_for(10)
    d.kill9()
    (gate / "go").touch()
    deadline = time.monotonic() + 30
    while not (gate / "done").exists():
        assert time.monotonic() < deadline, "the container never finished its lines"
        time.sleep(0.1)
    time.sleep(1.0)  # the shell exits right after its last touch
    d.start()
    got = listener.wait_for(20, timeout=30)
    assert [g.rsplit(b" - ", 1)[-1] for g in got] == [b"tick %d" % i for i in range(20)]
    assert d.docker("inspect", "-f", "{{.State.Status}}", "leaver").stdout.strip() == "exited"
