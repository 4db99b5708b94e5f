"""Real conmon + crun write a container's log; the reader must give it back whole.

A busybox container writes numbered stdout and stderr lines, a 1 MiB line and a last line
without newline; the log is read back (all, tail, and followed while it is written, also
across conmon's log reopen) and checked line by line.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import attrs
import pytest
import trio

from engine.logs.k8sfile import LogLine
from engine.logs.reader import LogQuery, ReadStats, read_logs

pytestmark = [pytest.mark.integration, pytest.mark.cgroup_v2]

CGROUP_PARENT = "moorage-logtest"
BIG = 1024 * 1024


def _need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(
            f"this test runs a real container and needs {binary!r} on PATH "
            "(Debian: apt-get install conmon crun busybox-static)"
        )
    return path


@attrs.define
class Container:
    """One container run the way the engine runs it: conmon double-forks, we `crun start`."""

    root: Path
    cid: str
    conmon: str
    crun: str

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    @property
    def userdata(self) -> Path:
        return self.root / "userdata"

    @property
    def log(self) -> Path:
        return self.userdata / "ctr.log"

    @property
    def crun_root(self) -> Path:
        return self.root / "crunroot"

    @property
    def rootfs(self) -> Path:
        return self.bundle / "rootfs"

    def build(self, script: str) -> None:
        bin_dir = self.rootfs / "bin"
        bin_dir.mkdir(parents=True)
        for d in ("proc", "dev", "sys", "tmp", "etc"):
            (self.rootfs / d).mkdir()
        shutil.copy2("/usr/bin/busybox", bin_dir / "busybox")
        applets = subprocess.run(
            ["/usr/bin/busybox", "--list"], check=True, capture_output=True, text=True
        ).stdout.split()
        for applet in applets:
            if applet != "busybox":
                (bin_dir / applet).symlink_to("busybox")
        self.userdata.mkdir()
        self.crun_root.mkdir()
        subprocess.run([self.crun, "spec", "-b", str(self.bundle)], check=True)
        spec = json.loads((self.bundle / "config.json").read_text())
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["/bin/sh", "-c", script]
        spec["process"]["env"] = ["PATH=/bin"]
        spec["root"] = {"path": str(self.rootfs), "readonly": True}
        spec["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{self.cid}"
        (self.bundle / "config.json").write_text(json.dumps(spec))

    async def create(self) -> None:
        """Spawn conmon, release it, and wait for crun create (the pid on the sync pipe)."""
        sync_r, sync_w = os.pipe()
        start_r, start_w = os.pipe()
        argv = [
            self.conmon,
            "--api-version",
            "-c", self.cid,
            "-u", self.cid,
            "-n", f"logtest-{self.cid[:12]}",
            "-r", self.crun,
            "--runtime-arg", f"--root={self.crun_root}",
            "-b", str(self.bundle),
            "-p", str(self.userdata / "pidfile"),
            "-P", str(self.userdata / "conmon.pid"),
            "-l", f"k8s-file:{self.log}",
            "--exit-dir", str(self.userdata),
            "--persist-dir", str(self.userdata),
            "--full-attach",
            "--log-level", "info",
        ]  # fmt: skip
        env = {"_OCI_SYNCPIPE": str(sync_w), "_OCI_STARTPIPE": str(start_r), "PATH": "/usr/bin:/bin"}
        with (self.userdata / "conmon.stderr").open("wb") as err:
            proc = await trio.lowlevel.open_process(
                argv,
                pass_fds=(sync_w, start_r),
                env=env,
                cwd=str(self.userdata),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        os.close(sync_w)
        os.close(start_r)
        os.write(start_w, b"\0")
        os.close(start_w)
        with trio.fail_after(30):
            await proc.wait()  # the first fork exits at once
            data = b""
            async with trio.lowlevel.FdStream(sync_r) as sync:
                while b"\n" not in data:
                    chunk = await sync.receive_some(4096)
                    if not chunk:
                        break
                    data += chunk
        reply = json.loads(data.split(b"\n", 1)[0] or b"{}")
        if reply.get("data", -1) < 0:
            stderr = (self.userdata / "conmon.stderr").read_text(errors="replace")
            pytest.fail(f"conmon/crun create failed: {reply} {stderr}")

    async def start(self) -> None:
        await trio.run_process(
            [self.crun, f"--root={self.crun_root}", "start", self.cid],
            stdin=subprocess.DEVNULL,
        )

    def exited(self) -> bool:
        return (self.userdata / "exit").exists()

    async def wait_exit(self) -> None:
        """conmon writes `<persist-dir>/exit` after the output is drained and the log synced."""
        while not await trio.Path(self.userdata / "exit").exists():  # noqa: ASYNC110 (a file)
            await trio.sleep(0.02)

    def reopen_log(self) -> None:
        """Ask conmon to reopen its log (message 2 on the ctl FIFO)."""
        fd = os.open(self.bundle / "ctl", os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, b"2 0 0\n")
        finally:
            os.close(fd)

    def cleanup(self) -> None:
        subprocess.run(
            [self.crun, f"--root={self.crun_root}", "delete", "-f", self.cid],
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        pid_file = self.userdata / "conmon.pid"
        if pid_file.exists() and not self.exited():
            try:
                os.kill(int(pid_file.read_text().strip()), 9)
            except (ValueError, ProcessLookupError):
                pass
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            leftover = hierarchy / CGROUP_PARENT
            for d in (leftover / self.cid, leftover):
                try:
                    d.rmdir()
                except OSError:
                    pass


@pytest.fixture
async def container(tmp_path: Path) -> AsyncIterator[Callable[[str], Container]]:
    if os.geteuid() != 0:
        pytest.fail("this test runs a real container and must run as root")
    conmon, crun = _need("conmon"), _need("crun")
    if not await trio.Path("/usr/bin/busybox").exists():
        pytest.fail("this test needs /usr/bin/busybox (Debian: apt-get install busybox-static)")
    made: list[Container] = []

    def make(script: str) -> Container:
        c = Container(tmp_path / f"c{len(made)}", secrets.token_hex(32), conmon, crun)
        c.root.mkdir()
        c.build(script)
        made.append(c)
        return c

    yield make
    for c in made:
        c.cleanup()


class Sink:
    def __init__(self) -> None:
        self.lines: list[LogLine] = []
        self.stdout = 0
        self._changed = trio.Event()

    async def __call__(self, lines: list[LogLine]) -> None:
        self.lines.extend(lines)
        self.stdout += sum(ln.stream == "stdout" for ln in lines)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_stdout(self, n: int) -> None:
        while self.stdout < n:
            await self._changed.wait()


N_OUT = 100_000
N_ERR = 2_000

SCRIPT = f"""
seq 0 {N_ERR - 1} | sed 's/^/err /' >&2 &
seq 0 {N_OUT - 1} | sed 's/^/out /'
head -c {BIG} /dev/zero | tr '\\0' 'x'; echo
wait
printf 'no newline at exit'
"""


def expected_stdout() -> list[bytes]:
    return [b"out %d\n" % i for i in range(N_OUT)] + [b"x" * BIG + b"\n", b"no newline at exit"]


def expected_stderr() -> list[bytes]:
    return [b"err %d\n" % i for i in range(N_ERR)]


def check(lines: list[LogLine]) -> None:
    out = [ln.data for ln in lines if ln.stream == "stdout"]
    err = [ln.data for ln in lines if ln.stream == "stderr"]
    assert len(out) == len(expected_stdout())
    assert hashlib.sha256(b"".join(out)).hexdigest() == (
        hashlib.sha256(b"".join(expected_stdout())).hexdigest()
    )
    assert out == expected_stdout()  # order, and every line whole
    assert err == expected_stderr()
    assert [ln.partial for ln in lines if ln.stream == "stdout"][-2:] == [False, True]


async def test_conmon_log_read_back_whole(container: Callable[[str], Container]) -> None:
    c = container(SCRIPT)
    followed = Sink()
    await c.create()
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: read_logs(
                    c.log,
                    LogQuery(),
                    followed,
                    follow=True,
                    is_running=lambda: True,
                    stopped=c.wait_exit,
                )
            )
            await c.start()
            await c.wait_exit()
    check(followed.lines)

    everything = Sink()
    await read_logs(c.log, LogQuery(), everything)
    check(everything.lines)
    assert everything.lines == followed.lines

    # The 1 MiB line was written in conmon-sized pieces: P records joined into one line.
    raw = c.log.read_bytes()
    assert raw.count(b" stdout P ") >= BIG // 8192

    stats = ReadStats()
    tail = Sink()
    await read_logs(c.log, LogQuery(tail=3, stderr=False), tail, stats=stats)
    assert [ln.data for ln in tail.lines] == expected_stdout()[-3:]
    assert stats.bytes_read < BIG + 512 * 1024 < len(raw) // 2

    errs = Sink()
    await read_logs(c.log, LogQuery(stdout=False), errs)
    assert [ln.data for ln in errs.lines] == expected_stderr()


ROTATING_SCRIPT = f"""
seq 0 {N_ERR - 1} | sed 's/^/err /' >&2 &
seq 0 49999 | sed 's/^/out /'
while [ ! -e /go1 ]; do usleep 5000; done
for k in 1 2 3; do head -c {BIG} /dev/zero | tr '\\0' 'x'; echo; done
seq 50000 74999 | sed 's/^/out /'
while [ ! -e /go2 ]; do usleep 5000; done
seq 75000 {N_OUT - 1} | sed 's/^/out /'
wait
printf 'no newline at exit'
"""


async def _written_to(log: Path) -> None:
    """Until the (fresh) log has some bytes: each rotated file must hold something."""
    with trio.fail_after(30):
        while True:
            try:
                if (await trio.Path(log).stat()).st_size > 0:
                    return
            except FileNotFoundError:
                pass
            await trio.sleep(0.001)


async def test_follow_across_conmon_log_reopen(container: Callable[[str], Container]) -> None:
    """The engine's rotation: rename `<log>` away, then ask conmon to reopen it."""
    c = container(ROTATING_SCRIPT)
    followed = Sink()
    stats = ReadStats()
    await c.create()
    rotated = [c.userdata / "ctr.log.1", c.userdata / "ctr.log.2", c.userdata / "ctr.log.3"]

    async def rotate() -> None:
        for k in range(len(rotated), 0, -1):
            older = c.userdata / f"ctr.log.{k - 1}" if k > 1 else c.log
            if await trio.Path(older).exists():
                await trio.Path(older).rename(rotated[k - 1])
        ino = (await trio.Path(rotated[0]).stat()).st_ino
        c.reopen_log()
        with trio.fail_after(10):
            await _new_log(ino)

    async def _new_log(ino: int) -> None:
        while True:  # conmon renames a fresh file over the log when it has reopened
            try:
                if (await trio.Path(c.log).stat()).st_ino != ino:
                    return
            except FileNotFoundError:
                pass
            await trio.sleep(0.005)

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: read_logs(
                    c.log,
                    LogQuery(),
                    followed,
                    follow=True,
                    is_running=lambda: True,
                    stopped=c.wait_exit,
                    stats=stats,
                )
            )
            await c.start()
            await followed.wait_stdout(50_000)
            await rotate()  # while the container waits
            await (trio.Path(c.rootfs) / "go1").touch()
            await _written_to(c.log)  # not a fixed sleep: a busy machine may be slower
            await rotate()  # while it writes (likely inside the megabyte lines)
            await followed.wait_stdout(75_003)
            await rotate()
            await (trio.Path(c.rootfs) / "go2").touch()
            await c.wait_exit()

    out = [ln.data for ln in followed.lines if ln.stream == "stdout"]
    want = (
        [b"out %d\n" % i for i in range(50_000)]
        + [b"x" * BIG + b"\n"] * 3
        + [b"out %d\n" % i for i in range(50_000, N_OUT)]
        + [b"no newline at exit"]
    )
    assert len(out) == len(want)
    assert out == want
    assert [ln.data for ln in followed.lines if ln.stream == "stderr"] == expected_stderr()
    assert stats.reopens_followed == 3
    sizes = [(await trio.Path(p).stat()).st_size for p in rotated]
    assert all(size > 0 for size in sizes), sizes

    # Reading the rotated files and the current one gives the same, without following.
    again = Sink()
    await read_logs(c.log, LogQuery(), again, rotated=rotated)
    assert again.lines == followed.lines
