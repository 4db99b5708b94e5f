"""Debian's rclone as a Docker volume plugin (`rclone serve docker`, local backend).

rclone listens on a socket in a private plugin directory that moord is told about
(`--plugin-socket-dir`); `docker volume create -d rclone` makes a volume on a local
remote directory; a container writes into it and the bytes reach that directory; after
moord restarts, a second container reads them. With rclone stopped, the same `docker
run` fails with an error that names the plugin (after `--plugin-timeout`); started
again while rclone is still down, it waits for rclone to come back and works.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DOCKER_CLI, Moord

pytestmark = [pytest.mark.integration, pytest.mark.needs_tools("rclone", "fusermount3")]

#: moord waits this long for a plugin (short: the test waits for the failure it provokes)
PLUGIN_TIMEOUT = "10"


class Rclone:
    """`rclone serve docker` on a private socket, with its own state and mount directories."""

    def __init__(self, root: Path, socket_dir: Path) -> None:
        self.root = root
        self.socket = socket_dir / "rclone.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        with open(self.root / "rclone.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["rclone", "serve", "docker", "--socket-addr", str(self.socket),
                 "--base-dir", str(self.root / "mounts"), "--cache-dir", str(self.root / "cache"),
                 "--config", str(self.root / "rclone.conf"), "-v"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            assert self.proc.poll() is None, f"rclone exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"rclone did not listen:\n{self.log()}"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        try:
            return (self.root / "rclone.log").read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


@pytest.fixture
def rclone(fresh_moord: Callable[[], Moord]) -> Iterator[tuple[Moord, Rclone, list[str]]]:
    d = fresh_moord()
    d.root.mkdir(parents=True, exist_ok=True)
    (d.root / "rclone.conf").write_text("")
    plugin = Rclone(d.root, d.root / "plugins")
    flags = ["--plugin-socket-dir", str(d.root / "plugins"),
             "--plugin-spec-dir", str(d.root / "plugin-specs"), "--plugin-timeout", PLUGIN_TIMEOUT]
    plugin.start()
    try:
        yield d, plugin, flags
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.docker("volume", "rm", "-f", "shared", check=False)
        plugin.stop()
        subprocess.run(["fusermount3", "-uz", str(d.root / "mounts" / "shared")],
                       capture_output=True, check=False)


def _wait_for(path: Path, content: str) -> str:
    """The file's content once it is `content` (rclone copies on close), or what it is."""
    deadline = time.monotonic() + 30
    found = ""
    while time.monotonic() < deadline:
        try:
            found = path.read_text()
        except OSError:
            found = ""
        if found == content:
            break
        time.sleep(0.2)
    return found


def test_rclone_volume_survives_a_moord_restart_and_a_plugin_outage(
        rclone: tuple[Moord, Rclone, list[str]]) -> None:
    d, plugin, flags = rclone
    remote = d.root / "remote"
    remote.mkdir()
    d.start(*flags)
    d.import_busybox()

    d.docker("volume", "create", "-d", "rclone", "-o", f"remote=:local:{remote}", "shared")
    listed = d.docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}").stdout.split("\n")
    assert "rclone shared" in listed
    # as dockerd: an activated legacy plugin is in `docker info`, not in `docker plugin ls`
    plugins = json.loads(d.docker("info", "--format", "{{json .Plugins}}").stdout)
    assert plugins["Volume"] == ["local", "rclone"]
    assert d.docker("plugin", "ls", "-q").stdout.split() == []
    inspected = json.loads(d.docker("volume", "inspect", "shared").stdout)[0]
    assert inspected["Driver"] == "rclone"
    assert inspected["Mountpoint"] == str(d.root / "mounts" / "shared")
    d.docker("run", "--rm", "-v", "shared:/data", "busybox", "sh", "-c",
             "echo bytes through rclone > /data/greeting", timeout=120)
    assert _wait_for(remote / "greeting", "bytes through rclone\n") == "bytes through rclone\n"

    d.stop()
    d.start(*flags)
    read = d.docker("run", "--rm", "-v", "shared:/data", "busybox", "cat", "/data/greeting",
                    timeout=120)
    assert read.stdout == "bytes through rclone\n"

    plugin.stop()
    down = d.docker("run", "--rm", "-v", "shared:/data", "busybox", "cat", "/data/greeting",
                    check=False, timeout=120)
    assert down.returncode != 0
    assert "volume plugin rclone" in down.stderr, down.stderr
    assert "cannot reach the plugin" in down.stderr or "not found" in down.stderr, down.stderr

    # the same command, started while rclone is still down, waits for it to come up
    waiting = subprocess.Popen(
        [DOCKER_CLI, "run", "--rm", "-v", "shared:/data", "busybox", "cat", "/data/greeting"],
        env=d.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while "Docker plugin rclone not found; looking again" not in d.log_tail(200):
            assert waiting.poll() is None, waiting.communicate()
            assert time.monotonic() < deadline, d.log_tail()
            time.sleep(0.1)
        plugin.start()
        out, err = waiting.communicate(timeout=120)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, f"{err}\n{plugin.log()}\n{d.log_tail()}"
    assert out == "bytes through rclone\n"
