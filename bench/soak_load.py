"""The soak's load: threads that follow logs, exec and stream stats against one moord,
riding through its kills and restarts (each reconnects when its stream ends).

Every worker runs until its `stop` event is set and keeps its own counters; the soak's
sampler reads them (plain ints, written by one thread) for the curves.
"""

from __future__ import annotations

import http.client
import subprocess
import threading
import time
from dataclasses import dataclass, field

from bench.adoption import UnixHTTP
from bench.engines import DOCKER_CLI, Engine
from bench.soak_analysis import SequenceCheck, parse_line

RECONNECT_PAUSE = 0.5
STALL_AFTER = 60.0  # a follower with no line for this long while its container writes: cut and resume
CLI_TIMEOUT = 60.0
MAX_NOTES = 20


def chatty_script(rate: int, pad: int) -> str:
    """busybox sh: numbered lines `soak <seq> xxx…`, about `rate` a second, in bursts of a tenth."""
    burst = max(1, rate // 10)
    return (f"i=0; p=$(printf '%{pad}s' '' | tr ' ' x); while :; do j=0; "
            f"while [ $j -lt {burst} ]; do echo \"soak $i $p\"; i=$((i+1)); j=$((j+1)); done; "
            "sleep 0.1; done")


@dataclass
class Moord:
    """What the workers need to know of the daemon: is it down on purpose right now."""

    down: threading.Event = field(default_factory=threading.Event)


@dataclass
class Worker:
    name: str
    engine: Engine
    daemon: Moord
    stop: threading.Event
    notes: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self.thread.start()

    def run(self) -> None:
        raise NotImplementedError

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(f"{time.strftime('%H:%M:%S', time.gmtime())} {text}")


@dataclass
class Follower(Worker):
    """`docker logs -f --timestamps` of one chatty container, resumed with `--since <last
    timestamp>` (nanoseconds) whenever the stream ends; sequence numbers checked."""

    container: str = ""
    check: SequenceCheck = field(default_factory=SequenceCheck)
    last_ts: str | None = None
    reconnects: int = 0
    ended_while_up: int = 0  # streams that ended with moord running: it dropped a follower
    stalls: int = 0
    other_lines: int = 0
    finishing: threading.Event = field(default_factory=threading.Event)
    _proc: subprocess.Popen[str] | None = None
    _last_line_at: float = 0.0

    def argv(self, follow: bool) -> list[str]:
        since = ["--since", self.last_ts] if self.last_ts else []
        return [DOCKER_CLI, "logs", *(["-f"] if follow else []), "--timestamps", *since, self.container]

    def run(self) -> None:
        """Follow until `finishing` is set and the stream has ended (the container was
        stopped), then read once more without -f: whatever came after the last line seen."""
        watchdog = threading.Thread(target=self._watch, name=f"{self.name}-watch", daemon=True)
        watchdog.start()
        while True:
            code, err = self._one_stream(follow=True)
            if self.finishing.is_set():
                code, err = self._one_stream(follow=False)
                if code != 0:
                    self.note(f"final read failed (exit {code}): {err}")
                return
            if not self.daemon.down.is_set():
                self.ended_while_up += 1
                self.note(f"stream ended (exit {code}) with moord up: {err}")
            self.reconnects += 1
            time.sleep(RECONNECT_PAUSE)

    def _one_stream(self, follow: bool) -> tuple[int, str]:
        self.check.new_stream()
        proc = subprocess.Popen(self.argv(follow), env=self.engine.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1)
        self._proc = proc
        self._last_line_at = time.monotonic()
        assert proc.stdout is not None
        assert proc.stderr is not None
        for text in proc.stdout:
            self._last_line_at = time.monotonic()
            parsed = parse_line(text)
            if parsed is None:
                self.other_lines += 1
                if self.other_lines <= 3:
                    self.note(f"not a soak line: {text.strip()[:120]!r}")
                continue
            ts, seq = parsed
            self.check.feed(seq)
            self.last_ts = ts
        err = proc.stderr.read().strip()[-300:]
        self._proc = None
        return proc.wait(), err

    def _watch(self) -> None:
        """A stream that stays silent while its container writes is a hang: cut it, resume."""
        while not self.finishing.wait(5.0):
            proc = self._proc
            if (proc is not None and not self.daemon.down.is_set() and not self.finishing.is_set()
                    and time.monotonic() - self._last_line_at > STALL_AFTER):
                self.stalls += 1
                self.note(f"no line for {STALL_AFTER:.0f} s: stream cut and resumed")
                proc.kill()
                self._last_line_at = time.monotonic()


@dataclass
class ExecLoop(Worker):
    """`docker exec C true`, one after the other; failures while moord is up are noted."""

    container: str = ""
    ok: int = 0
    failed_down: int = 0
    failed_up: int = 0

    def run(self) -> None:
        while not self.stop.is_set():
            down = self.daemon.down.is_set()
            try:
                result = subprocess.run([DOCKER_CLI, "exec", self.container, "true"], env=self.engine.env,
                                        capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False)
                code, err = result.returncode, result.stderr.strip()[-200:]
            except subprocess.TimeoutExpired:
                code, err = -1, f"timed out after {CLI_TIMEOUT:.0f} s"
            if code == 0:
                self.ok += 1
            elif down or self.daemon.down.is_set():
                self.failed_down += 1
                time.sleep(RECONNECT_PAUSE)
            else:
                self.failed_up += 1
                self.note(f"exec failed (exit {code}): {err}")
                time.sleep(RECONNECT_PAUSE)


@dataclass
class StatsStream(Worker):
    """`GET /containers/C/stats?stream=1` on the socket, one JSON document a line; reconnects."""

    container: str = ""
    frames: int = 0
    reconnects: int = 0
    ended_while_up: int = 0

    def run(self) -> None:
        while not self.stop.is_set():
            conn = UnixHTTP(self.engine.socket_path, timeout=30)
            try:
                conn.request("GET", f"/containers/{self.container}/stats?stream=1")
                response = conn.getresponse()
                if response.status != 200:
                    self.note(f"stats answered {response.status}: {response.read()[:200]!r}")
                    time.sleep(5)
                    continue
                while not self.stop.is_set():
                    line = response.readline()
                    if not line:
                        break
                    if line.strip():
                        self.frames += 1
            except (OSError, http.client.HTTPException) as e:
                if not self.daemon.down.is_set() and not self.stop.is_set():
                    self.note(f"stats stream broke: {e!r}")
            finally:
                conn.close()
            if not self.daemon.down.is_set() and not self.stop.is_set():
                self.ended_while_up += 1
            self.reconnects += 1
            time.sleep(RECONNECT_PAUSE)
