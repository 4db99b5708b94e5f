"""Client load for the crash test: docker CLI clients creating, starting, stopping and
removing containers at random, paused while the invariants are checked.

Each client is a thread running the stock docker CLI, one command at a time, with short
random sleeps. A gate stops them between commands: the test closes it when it kills
moord, waits until no command is in flight, restarts moord and checks, then opens it
again. Commands that fail because moord died under them are expected; they are counted
and their first line bucketed, never judged.
"""

from __future__ import annotations

import random
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable

import attrs

from tests.support.daemon import DOCKER_CLI, Moord

POOL_LOW = 6  # fewer known containers than this: make more before anything else
POOL_HIGH = 30  # more than this: remove more eagerly
CLI_TIMEOUT = 60.0
SHORT = "1"  # `sleep` seconds of short-lived containers
LONGER = "4"  # ... and of ones that outlive a few kills (re-adopted more than once)


@attrs.frozen
class Op:
    """One kind of client command; `argv` builds it, given a known container ID (or None)."""

    name: str
    weight: int
    needs_container: bool
    argv: Callable[[str | None, random.Random], list[str]]
    makes_container: bool = False
    removes_container: bool = False


def _sleep(rng: random.Random) -> list[str]:
    return ["sleep", rng.choice((SHORT, SHORT, LONGER))]


def _ref(cid: str | None) -> str:
    assert cid is not None
    return cid


OPS = (
    Op("create", 3, False, lambda c, r: ["create", "busybox", *_sleep(r)], makes_container=True),
    Op("start", 3, True, lambda c, r: ["start", _ref(c)]),
    Op("run -d", 4, False, lambda c, r: ["run", "-d", "busybox", *_sleep(r)], makes_container=True),
    Op("run -d --restart on-failure:2", 1, False,
       lambda c, r: ["run", "-d", "--restart", "on-failure:2", "busybox", "sh", "-c", "sleep 0.5; exit 3"],
       makes_container=True),
    Op("stop -t 0", 3, True, lambda c, r: ["stop", "-t", "0", _ref(c)]),
    Op("rm -f", 3, True, lambda c, r: ["rm", "-f", _ref(c)], removes_container=True),
    Op("run --rm", 2, False, lambda c, r: ["run", "--rm", "busybox", "true"]),
    Op("pause", 1, True, lambda c, r: ["pause", _ref(c)]),
    Op("unpause", 1, True, lambda c, r: ["unpause", _ref(c)]),
)


@attrs.define
class OpCount:
    attempted: int = 0
    succeeded: int = 0


@attrs.define
class Tally:
    """What the clients did: per operation, and why commands failed (bucketed)."""

    ops: dict[str, OpCount] = attrs.field(factory=lambda: {op.name: OpCount() for op in OPS})
    failures: Counter[str] = attrs.field(factory=Counter)
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def record(self, op: Op, ok: bool, stderr: str) -> None:
        with self.lock:
            count = self.ops[op.name]
            count.attempted += 1
            count.succeeded += ok
            if not ok:
                self.failures[failure_kind(stderr)] += 1

    def totals(self) -> OpCount:
        with self.lock:
            return OpCount(sum(c.attempted for c in self.ops.values()),
                           sum(c.succeeded for c in self.ops.values()))


def failure_kind(stderr: str) -> str:
    """The first line of a failure without IDs, names and numbers: a bucket to count."""
    line = next((ln for ln in stderr.splitlines() if ln.strip()), "(no output)").strip()
    line = re.sub(r"[0-9a-f]{12,64}", "<id>", line)
    line = re.sub(r'"/?[a-z]+_[a-z]+"', "<name>", line)
    line = re.sub(r"/tmp/\S+", "<path>", line)
    return re.sub(r"\d+", "N", line)[:160]


class Gate:
    """Lets clients run commands only while open; `close` waits for those in flight."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._open = False
        self._busy = 0
        self._in_flight: dict[int, str] = {}
        self.stopping = False

    def enter(self, what: str) -> bool:
        """Wait until open (False when the run is over), then count a command in flight."""
        with self._cond:
            self._cond.wait_for(lambda: self._open or self.stopping)
            if self.stopping:
                return False
            self._busy += 1
            self._in_flight[threading.get_ident()] = what
            return True

    def leave(self) -> None:
        with self._cond:
            self._busy -= 1
            self._in_flight.pop(threading.get_ident(), None)
            self._cond.notify_all()

    def open(self) -> None:
        with self._cond:
            self._open = True
            self._cond.notify_all()

    def close(self, timeout: float = 120.0) -> None:
        with self._cond:
            self._open = False
            if not self._cond.wait_for(lambda: self._busy == 0, timeout):
                raise RuntimeError(f"client commands still running {timeout:.0f} s after the gate "
                                   f"closed: {sorted(self._in_flight.values())}")

    def in_flight(self) -> list[str]:
        with self._cond:
            return sorted(self._in_flight.values())

    def finish(self) -> None:
        with self._cond:
            self.stopping = True
            self._cond.notify_all()


class Pool:
    """Container IDs the clients know of: from their own commands and from each check."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, cid: str) -> None:
        with self._lock:
            self._ids.add(cid)

    def discard(self, cid: str) -> None:
        with self._lock:
            self._ids.discard(cid)

    def replace(self, ids: list[str]) -> None:
        with self._lock:
            self._ids = set(ids)

    def pick(self, rng: random.Random) -> str | None:
        with self._lock:
            return rng.choice(sorted(self._ids)) if self._ids else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)


def choose_op(rng: random.Random, pool_size: int) -> Op:
    """A weighted pick that keeps the number of containers between POOL_LOW and POOL_HIGH."""
    ops = list(OPS)
    weights = [op.weight for op in ops]
    for i, op in enumerate(ops):
        if pool_size < POOL_LOW and (op.needs_container or op.removes_container):
            weights[i] = 0 if pool_size == 0 else 1
        if pool_size > POOL_HIGH and op.removes_container:
            weights[i] *= 4
    return rng.choices(ops, weights)[0]


class Client(threading.Thread):
    """One docker CLI user, issuing commands while the gate is open."""

    def __init__(self, d: Moord, gate: Gate, pool: Pool, tally: Tally, seed: int) -> None:
        super().__init__(daemon=True, name=f"crash-client-{seed}")
        self.d, self.gate, self.pool, self.tally = d, gate, pool, tally
        self.rng = random.Random(seed)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while self._one():
                time.sleep(self.rng.uniform(0, 0.04))
        except BaseException as exc:  # surfaced by the test, not lost in a thread
            self.error = exc

    def _one(self) -> bool:
        op = choose_op(self.rng, len(self.pool))
        cid = self.pool.pick(self.rng) if op.needs_container else None
        if op.needs_container and cid is None:
            return True
        argv = op.argv(cid, self.rng)
        if not self.gate.enter(f"{op.name} {cid[:12] if cid else ''}".strip()):
            return False
        try:
            result = self._docker(argv)
        finally:
            self.gate.leave()
        ok = result.returncode == 0
        self.tally.record(op, ok, result.stderr)
        if ok and op.makes_container:
            self.pool.add(result.stdout.strip())
        if ok and op.removes_container and cid:
            self.pool.discard(cid)
        return True

    def _docker(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([DOCKER_CLI, *argv], env=self.d.env, capture_output=True,
                                  text=True, timeout=CLI_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, -1, "", f"timed out after {CLI_TIMEOUT:.0f} s")
