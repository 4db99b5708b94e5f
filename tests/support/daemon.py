"""A real moord for tests: its own data root, exec root, socket and cgroup parent.

Integration tests drive it with the stock docker CLI and the Docker SDK; nothing
here fakes the engine. A host that can't run it makes the tests fail with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import attrs

from engine.networks.cleanup import purge_host_state

REPO = Path(__file__).resolve().parents[2]
#: the docker CLIs the tests can drive, in order: a current static client, then Debian's
#: docker.io client (scripts/test.sh installs that one when neither is there)
#: How much slower than this machine the tests' host is: the cgroup v2 guest, emulated,
#: sets MOORAGE_TEST_SLOWNESS so the harness's waits (moord's start and stop, a docker
#: command) stretch with it. A wait, never a timing assertion.
SLOWNESS = max(1.0, float(os.environ.get("MOORAGE_TEST_SLOWNESS", "1")))

DOCKER_CLI_CANDIDATES = ("/usr/local/bin/docker", "/usr/bin/docker")


def find_docker_cli() -> str:
    """The docker CLI to drive: $MOORAGE_DOCKER_CLI, else the first candidate installed."""
    explicit = os.environ.get("MOORAGE_DOCKER_CLI")
    if explicit:
        return explicit
    return next((c for c in DOCKER_CLI_CANDIDATES if os.access(c, os.X_OK)), DOCKER_CLI_CANDIDATES[0])


def docker_cli_description() -> str:
    """Which docker CLI runs, with its version, for the session's header."""
    try:
        version = subprocess.run([DOCKER_CLI, "--version"], capture_output=True, text=True,
                                 timeout=30, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        version = f"cannot run: {exc}"
    return f"docker CLI: {DOCKER_CLI} ({version or 'no version'})"


DOCKER_CLI = find_docker_cli()
REQUIRED_BINARIES = ("/usr/bin/conmon", "/usr/bin/crun", "/usr/bin/busybox")


def host_problems() -> list[str]:
    """Why this host can't run the integration tests, in words (empty when it can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("integration tests need root (they mount overlayfs and run crun)")
    for binary in REQUIRED_BINARIES:
        if not os.access(binary, os.X_OK):
            problems.append(f"{binary} is missing: run scripts/setup.sh (apt packages)")
    if not os.access(DOCKER_CLI, os.X_OK):
        problems.append(f"the docker CLI ({DOCKER_CLI}) is missing: it is the compatibility client "
                        "(scripts/test.sh installs Debian's docker.io client when no docker CLI is there)")
    return problems


#: What systemd does for an activated service: the socket becomes fd 3, LISTEN_FDS counts
#: the sockets and LISTEN_PID names the process they are for (this one, after exec).
_AS_ACTIVATED = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.argv[2], sys.argv[2:])
"""


def _ping(sock_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(sock_path))
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: moorage\r\nConnection: close\r\n\r\n")
            data = s.recv(4096)
            return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@attrs.define(eq=False)
class Moord:
    root: Path
    name: str = "moord"
    proc: subprocess.Popen[bytes] | None = None
    #: how moord is started: the checkout's, or an installed release's `bin/moord`
    program: tuple[str, ...] = attrs.field(default=(sys.executable, "-m", "engine.daemon"), kw_only=True)

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "run"

    @property
    def socket_path(self) -> Path:
        return self.root / "moord.sock"

    @property
    def log_path(self) -> Path:
        return self.root / "moord.log"

    @property
    def cgroup_parent(self) -> str:
        return f"moorage-test-{self.root.name}"

    @property
    def network_prefix(self) -> str:
        """7 characters, so no daemon's prefix is the start of another's."""
        return "mt" + hashlib.sha256(self.root.name.encode()).hexdigest()[:5]

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env["MOORAGE_HOST"] = self.host
        env.pop("DOCKER_API_VERSION", None)
        env["DOCKER_CONFIG"] = str(self.root / "docker-config")
        return env

    def argv(self, *extra: str) -> list[str]:
        return [
            *self.program,
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--host", self.host,
            "--cgroup-parent", self.cgroup_parent,
            "--network-prefix", self.network_prefix,
            "--log-level", "debug",
            "--log-target", "stderr",  # the tests read it from log_path
            *extra,
        ]

    def start(self, *extra: str, timeout: float = 30.0, environ: Mapping[str, str] | None = None,
              listening: socket.socket | None = None) -> None:
        """Start moord and wait until it answers. `environ` adds variables (a test's
        NOTIFY_SOCKET...); `listening` is passed as fd 3 with LISTEN_FDS/LISTEN_PID, as
        systemd's socket activation does."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "docker-config").mkdir(exist_ok=True)
        argv, pass_fds = self.argv(*extra), ()
        if listening is not None:
            argv = [sys.executable, "-c", _AS_ACTIVATED, str(listening.fileno()), *argv]
            pass_fds = (listening.fileno(),)
        env = {**os.environ, **environ} if environ else None
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=REPO, env=env,
                                         stdin=subprocess.DEVNULL, pass_fds=pass_fds)
        timeout *= SLOWNESS
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moord exited with {self.proc.returncode}:\n{self.log_tail()}")
            if _ping(self.socket_path):
                return
            time.sleep(0.05)
        raise RuntimeError(f"moord did not answer within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout * SLOWNESS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def reload(self, until: str, timeout: float = 60.0) -> str:
        """SIGHUP, then wait until the log says `until`; returns the log's tail."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while until not in self.log_tail(400) and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.log_tail(400)

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the stock docker CLI against this daemon."""
        result = subprocess.run([DOCKER_CLI, *args], env=self.env, capture_output=True,
                                input=input.decode() if input is not None else None,
                                text=True, timeout=timeout * SLOWNESS)
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed ({result.returncode}):\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}\nmoord log:\n{self.log_tail(30)}")
        return result

    def import_busybox(self) -> None:
        tarball = self.root / "busybox.tar"
        subprocess.run([sys.executable, "-m", "engine.images.busybox_rootfs", str(tarball)],
                       check=True, cwd=REPO)
        self.docker("import", "--change", 'CMD ["sh"]', str(tarball), "busybox:latest")

    def cleanup(self) -> None:
        """Remove every container (moord leaves them running on exit), stop moord, unmount."""
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False, timeout=120)
            self.stop()
        _kill_leftovers(self)
        purge_host_state(self.network_prefix, self.exec_root)
        _unmount_under(self.root)
        _remove_cgroups(self.cgroup_parent)
        shutil.rmtree(self.root, ignore_errors=True)


def _kill_leftovers(d: Moord) -> None:
    crun_root = d.exec_root / "crun"
    if not crun_root.is_dir():
        return
    for entry in crun_root.iterdir():
        subprocess.run(["crun", f"--root={crun_root}", "kill", entry.name, "KILL"],
                       capture_output=True, check=False)
        time.sleep(0.05)
        subprocess.run(["crun", f"--root={crun_root}", "delete", "--force", entry.name],
                       capture_output=True, check=False)


def _unmount_under(root: Path) -> None:
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _remove_cgroups(parent: str) -> None:
    for base in Path("/sys/fs/cgroup").iterdir():
        target = base / parent
        if not target.is_dir():
            continue
        for child in sorted(target.rglob("*"), key=lambda p: len(str(p)), reverse=True):
            if child.is_dir():
                with contextlib.suppress(OSError):
                    child.rmdir()
        with contextlib.suppress(OSError):
            target.rmdir()


def inspect(d: Moord, ref: str) -> dict[str, object]:
    result = d.docker("inspect", ref)
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    assert len(data) == 1
    item = data[0]
    assert isinstance(item, dict)
    return item
