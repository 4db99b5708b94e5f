"""Connection policing for the API socket: how long a client may keep moord waiting, and
how many connections one client may hold.

Three clocks, each for one thing a client owes the server, none for what the server owes
the client (docs/architecture.md, "Stalled and greedy clients"):

- the *head* of a request must arrive whole within `header_timeout`, counted from the
  accept (first request) or from the first byte of a keep-alive connection's next one;
- a keep-alive connection may wait `idle_timeout` for that first byte;
- a request body may pause at most `body_timeout` between two reads, so a slow upload
  that keeps moving is never cut, a stopped one is.

Once a response has begun (`logs -f`, `events`, `wait`, an attach or exec hijack, a build
or pull streaming its progress) no clock runs: those may last for days.

Clients are local, so moord knows who they are from the socket (SO_PEERCRED): a process
may hold `per_process` connections, and all processes of one uid together `per_user`.
The process cap catches one runaway client; the user cap, much larger because root is
behind the CLI, compose, SDKs and agents alike, bounds them all together.
"""

from __future__ import annotations

import logging
import math
import socket
import struct
import time
from collections import Counter
from typing import Final

import attrs
import trio

from engine.metrics.catalog import API_CUT_REASONS, API_REFUSAL_CAPS, METRICS

log = logging.getLogger(__name__)

#: `struct ucred`: pid, uid, gid as C ints.
_UCRED = struct.Struct("3i")

#: Why moord closed a connection on its own (`moorage_api_connections_cut_total`).
HEADER_TIMEOUT, IDLE_TIMEOUT, BODY_STALLED = API_CUT_REASONS
#: Which cap turned a connection away (`moorage_api_connections_refused_total`).
PROCESS_CAP, USER_CAP = API_REFUSAL_CAPS

#: How long a turned-away client gets to send its request head, so that the 429 comes as
#: the answer to it (Go's client drops a response that arrives before its request).
REFUSAL_WAIT: Final = 2.0
#: Seconds between two warnings about refused connections.
REFUSAL_LOG_INTERVAL: Final = 10.0


_NO_LESS_THAN_0S = attrs.validators.ge(0.0)
_NO_LESS_THAN_0 = attrs.validators.ge(0)


@attrs.frozen
class ConnectionLimits:
    """The daemon's `api-*` settings (their defaults are in engine/config.py); 0 turns a
    limit off, and a server made without settings polices nothing."""

    header_timeout: float = attrs.field(default=0.0, validator=_NO_LESS_THAN_0S)
    idle_timeout: float = attrs.field(default=0.0, validator=_NO_LESS_THAN_0S)
    body_timeout: float = attrs.field(default=0.0, validator=_NO_LESS_THAN_0S)
    per_process: int = attrs.field(default=0, validator=_NO_LESS_THAN_0)
    per_user: int = attrs.field(default=0, validator=_NO_LESS_THAN_0)


def seconds_or_never(seconds: float) -> float:
    """A timeout setting as a duration for trio: 0 (off) is forever."""
    return seconds if seconds > 0 else math.inf


@attrs.frozen
class Peer:
    """The process at the other end of a unix socket, as the kernel saw it connect."""

    pid: int  # 0 when the process is not visible from moord's pid namespace
    uid: int
    gid: int

    def describe(self) -> str:
        return f"process {self.pid} (uid {self.uid})" if self.pid else f"uid {self.uid}"


def peer_of(sock: trio.socket.SocketType) -> Peer | None:
    """The peer's credentials (SO_PEERCRED); None for a socket that has none.

    A getsockopt on a connected socket: it answers at once, never blocks.
    """
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return Peer(pid, uid, gid)


@attrs.frozen
class Refusal:
    """Why a connection is turned away: the cap it reached and what the client is told."""

    cap: str
    message: str


@attrs.define(eq=False)
class ClientTally:
    """Open API connections by process and by uid, and the caps on them."""

    limits: ConnectionLimits
    by_pid: Counter[int] = attrs.field(factory=Counter)
    by_uid: Counter[int] = attrs.field(factory=Counter)
    # refusals are logged at most once per REFUSAL_LOG_INTERVAL, with a count
    _unlogged: int = 0
    _logged_at: float = -math.inf

    def admit(self, peer: Peer | None) -> Refusal | None:
        """Count a new connection in, or say which cap keeps it out (it is not counted).

        A peer without credentials counts against no cap; one with pid 0 (a process in
        a pid namespace moord does not see) only against its uid's.
        """
        refusal = self._over_cap(peer) if peer is not None else None
        if refusal is not None:
            return refusal
        METRICS.api_connections.inc()
        if peer is not None:
            if peer.pid:
                self.by_pid[peer.pid] += 1
            self.by_uid[peer.uid] += 1
        return None

    def _over_cap(self, peer: Peer) -> Refusal | None:
        cap, held = self.limits.per_process, self.by_pid[peer.pid]
        if cap and peer.pid and held >= cap:
            return Refusal(PROCESS_CAP, f"too many connections: {peer.describe()} holds {held}, "
                                        f"the limit is {cap} (api-max-connections-per-process)")
        cap, held = self.limits.per_user, self.by_uid[peer.uid]
        if cap and held >= cap:
            return Refusal(USER_CAP, f"too many connections: the processes of uid {peer.uid} "
                                     f"hold {held}, the limit is {cap} "
                                     "(api-max-connections-per-user)")
        return None

    def release(self, peer: Peer | None) -> None:
        """An admitted connection closed."""
        METRICS.api_connections.inc(-1)
        if peer is None:
            return
        if peer.pid:
            _decrement(self.by_pid, peer.pid)
        _decrement(self.by_uid, peer.uid)

    def record_refusal(self, refusal: Refusal) -> None:
        """Count a refusal; log it, or how many there were since the last one logged (a
        runaway client must not flood moord's log)."""
        METRICS.api_connections_refused.inc(cap=refusal.cap)
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at < REFUSAL_LOG_INTERVAL:
            return
        log.warning("refused %d API connection(s) with 429 since the last report; the "
                    "latest: %s", self._unlogged, refusal.message)
        self._unlogged, self._logged_at = 0, now


def _decrement(counts: Counter[int], key: int) -> None:
    """One less; a key at zero is dropped, so the tallies stay as small as the clients."""
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]


def record_cut(reason: str) -> None:
    """Count a connection moord closed because a clock ran out."""
    METRICS.api_connections_cut.inc(reason=reason)
