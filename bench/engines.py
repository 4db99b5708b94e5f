"""The three engines, each started privately: its own data root, run dir and socket.

Every engine lives in a directory under the run's temporary root, so nothing it keeps
clashes with a system-wide daemon or with the other engines, and everything it started
can be found afterwards by that path (see procs.mentioning).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from bench import procs

REPO = Path(__file__).resolve().parents[1]
DOCKER_CLI = "/usr/local/bin/docker"
MOORD_CGROUP_PARENT = "moorage-bench"
# Podman 4.3 as root asks crun for RLIMIT_NOFILE 1048576 and RLIMIT_NPROC 4194304; without
# CAP_SYS_RESOURCE the hard limits are lower and every container fails to start unless asked
# for limits the host grants (runtime-spike.md, addendum on the peers).
PODMAN_ULIMITS = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768")


class EngineError(Exception):
    """An engine could not be started, or refused a command the benchmark needs."""


def _ping(sock_path: Path) -> bool:
    """GET /_ping straight on the socket: cheaper than a docker CLI call while polling."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(sock_path))
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


class Engine:
    """A daemon serving the Docker API on a private socket, driven with the docker CLI."""

    name: ClassVar[str]
    binary: ClassVar[str]
    default_network: ClassVar[str]
    run_args: ClassVar[tuple[str, ...]] = ()
    start_timeout: ClassVar[float] = 60.0

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def installed(cls) -> bool:
        return os.access(cls.binary, os.X_OK)

    def clash(self) -> str | None:
        """Why starting here would disturb something already on the host (None: it won't)."""
        return None

    def argv(self) -> list[str]:
        raise NotImplementedError

    @property
    def socket_path(self) -> Path:
        return self.root / "api.sock"

    @property
    def log_path(self) -> Path:
        return self.root / "daemon.log"

    @property
    def env(self) -> dict[str, str]:
        """The docker CLI's environment: this engine's socket, a private CLI config."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = f"unix://{self.socket_path}"
        env["DOCKER_CONFIG"] = str(self.root / "docker-config")
        return env

    def daemon_env(self) -> dict[str, str]:
        """The daemon's environment: temporary files stay in its own directory.

        Podman's image import leaves api_load.tar* files in $TMPDIR (default /var/tmp), and
        containerd writes goroutine dumps there; under the run's root they go with it.
        """
        tmp = self.root / "tmpdir"
        tmp.mkdir(parents=True, exist_ok=True)
        return {**os.environ, "TMPDIR": str(tmp)}

    def start(self) -> None:
        """Start the daemon and wait until its API answers."""
        self.launch()
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineError(f"exited with {self.proc.returncode}: {self.log_tail()}")
            if _ping(self.socket_path):
                return
            time.sleep(0.05)
        raise EngineError(f"no answer on {self.socket_path} within {self.start_timeout:.0f} s")

    def launch(self) -> None:
        """Start the daemon process (again, after a kill); don't wait for it."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "docker-config").mkdir(exist_ok=True)
        with open(self.log_path, "ab") as log:
            # own session: a ^C at the terminal reaches the benchmark, which stops engines in order
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=self.root, env=self.daemon_env(), start_new_session=True)

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.splitlines()[-lines:])

    def docker(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run the stock docker CLI against this engine; raise EngineError if it fails."""
        result = subprocess.run([DOCKER_CLI, *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if result.returncode != 0:
            raise EngineError(f"docker {' '.join(args)}: exit {result.returncode}: "
                              f"{result.stderr.strip()[-500:]}")
        return result

    def import_busybox(self, tarball: Path) -> None:
        self.docker("import", "--change", 'CMD ["sh"]', str(tarball), "busybox:latest")

    def version(self) -> dict[str, Any]:
        """The server part of `docker version`, as the engine reports it."""
        out = self.docker("version", "--format", "{{json .Server}}").stdout
        data = json.loads(out)
        return data if isinstance(data, dict) else {}

    def daemon_pids(self) -> dict[int, str]:
        """The daemon and its helper processes (pid → name), for the daemon's memory."""
        if self.proc is None or self.proc.poll() is not None:
            return {}
        own = procs.read_proc(self.proc.pid)
        found = {self.proc.pid: own.comm if own else self.name}
        found.update((p.pid, p.comm) for p in procs.descendants(self.proc.pid))
        return found

    def remove_all_containers(self) -> int:
        """`docker rm -f` everything (moord keeps containers running when it exits)."""
        ids = self.docker("ps", "-aq").stdout.split()
        if ids:
            self.docker("rm", "-f", *ids, timeout=300)
        return len(ids)

    def stop(self, timeout: float = 60.0) -> str:
        """SIGTERM and wait; SIGKILL after timeout. Returns how it ended, in words."""
        if self.proc is None:
            return "never started"
        if self.proc.poll() is not None:
            return f"had exited ({self.proc.returncode})"
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            return f"stopped (exit {self.proc.returncode})"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return f"did not stop within {timeout:.0f} s of SIGTERM: killed"


def _moord_binary() -> str:
    """moord next to the interpreter running the benchmark (the venv's), else the repo's venv."""
    beside = Path(sys.executable).parent / "moord"
    return str(beside if beside.exists() else REPO / ".venv" / "bin" / "moord")


class Moord(Engine):
    name = "moord"
    binary = _moord_binary()
    default_network = "bridge <prefix>0 (network `bridge`), nftables"
    cgroup_parent: str = MOORD_CGROUP_PARENT

    @property
    def network_prefix(self) -> str:
        """Names this moord's bridges, veths and nftables table. Its own, 7 characters (so no
        prefix is the start of another): the benchmark runs two moords at once (moord-10ms
        beside moord), and the default `moorage` would share a bridge and a table with them
        and with any moord the host runs."""
        return "mb" + hashlib.sha256(str(self.root).encode()).hexdigest()[:5]

    def argv(self) -> list[str]:
        return [self.binary, "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "run"),
                "--host", f"unix://{self.socket_path}", "--cgroup-parent", self.cgroup_parent,
                "--network-prefix", self.network_prefix,
                # its log in daemon.log (the default, with no terminal and no systemd, is the
                # host's /var/log/moorage/moord.log)
                "--log-target", "stderr"]

    def stop(self, timeout: float = 60.0) -> str:
        """moord leaves its networks in place when it exits (they outlive restarts by design):
        once it is stopped, remove its bridges, veths, nftables table and namespace files."""
        outcome = super().stop(timeout)
        if self.proc is None:
            return outcome
        purge = subprocess.run([sys.executable, "-m", "engine.networks.cleanup", self.network_prefix,
                                str(self.root / "run")], cwd=REPO, capture_output=True, text=True,
                               check=False)
        removed = [line for line in purge.stdout.splitlines() if line.strip()]
        if purge.returncode != 0:
            return f"{outcome}; removing its network state FAILED: {purge.stderr.strip()[-300:]}"
        return f"{outcome}; removed its network state: {', '.join(removed)}" if removed else outcome


class Dockerd(Engine):
    name = "dockerd"
    binary = "/usr/sbin/dockerd"
    default_network = "bridge docker0"
    SYSTEM_CONTAINERD = Path("/run/containerd/containerd.sock")

    def clash(self) -> str | None:
        # dockerd 20.10 uses a running system containerd instead of starting its own managed one
        if self.SYSTEM_CONTAINERD.exists():
            return (f"{self.SYSTEM_CONTAINERD} exists: dockerd would use that containerd instead of "
                    "its own, and the benchmark could not clean up after it")
        if Path("/sys/class/net/docker0").exists():
            return "docker0 exists: another dockerd is using it"
        return None

    @property
    def config_path(self) -> Path:
        return self.root / "daemon.json"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("{}\n")  # instead of /etc/docker/daemon.json: only our flags apply
        super().start()

    def argv(self) -> list[str]:
        return [self.binary, "-H", f"unix://{self.socket_path}", "--data-root", str(self.root / "data"),
                "--exec-root", str(self.root / "run"), "--pidfile", str(self.root / "dockerd.pid"),
                "--config-file", str(self.config_path), "--storage-driver=overlay2"]


class Podman(Engine):
    name = "podman"
    binary = "/usr/bin/podman"
    default_network = "bridge podman0, netavark"
    run_args = PODMAN_ULIMITS

    def argv(self) -> list[str]:
        # --tmpdir and --network-config-dir keep /run/libpod and /etc/containers/networks untouched
        return [self.binary, "--root", str(self.root / "data"), "--runroot", str(self.root / "run"),
                "--tmpdir", str(self.root / "tmp"), "--network-config-dir", str(self.root / "networks"),
                "system", "service", "--time=0", f"unix://{self.socket_path}"]


ENGINES: dict[str, type[Engine]] = {e.name: e for e in (Moord, Dockerd, Podman)}


def describe_version(server: dict[str, Any]) -> str:
    """One line: the engine's version and API, then its components' versions."""
    parts = [f"{server.get('Version', '?')} (API {server.get('ApiVersion', '?')})"]
    for comp in server.get("Components") or []:
        name = str(comp.get("Name", ""))
        if name in ("Engine", "Podman Engine"):
            continue
        found = re.search(r"\d+\.\d+[\w.+~-]*", str(comp.get("Version", "")))
        parts.append(f"{name} {found.group(0) if found else comp.get('Version')}")
    return ", ".join(parts)
