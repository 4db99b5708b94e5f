"""A third-party moorage log driver: every line a container writes, as a syslog message.

This is a separate package (see its pyproject.toml): installed with pip into moord's
environment, it is found through the `moorage.plugins` entry-point group and moord
offers `--log-driver syslog` without any engine code knowing about it. It is the proof,
and the worked example in docs/plugins.md, that log drivers are plugins.

The driver is *readable*: moord keeps its own log file, so `docker logs` still works
(Docker calls this "dual logging"), and *ships*: moord follows that file and hands the
driver each batch of new lines, which it sends as one UDP datagram per line. The
container never waits for syslog: conmon writes the file, whatever this driver does.

Options, as Docker's syslog driver names them:

- `syslog-address`: `udp://host[:port]` (port 514 by default); default `udp://127.0.0.1:514`.
- `tag`: the APP-NAME; a template over `{{.ID}}` (12 characters, the default),
  `{{.FullID}}`, `{{.Name}}` and `{{.ImageName}}`.
- `syslog-facility`: `daemon` by default; severity is `info` for stdout, `err` for stderr.
- `syslog-format`: `rfc5424` (default; seconds), `rfc5424micro` (microseconds) or
  `rfc3164` (`<PRI>Mmm dd hh:mm:ss tag[pid]: msg`, no hostname, as Docker sends it).
- `max-size`, `max-file` and the other file options: for the copy moord keeps.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Mapping, Sequence

import trio

from plugins import hookimpl
from plugins.contracts import InvalidLogOption, LoggedContainer, LogRecord

NAME = "syslog"
DEFAULT_ADDRESS = "udp://127.0.0.1:514"
DEFAULT_PORT = 514
DEFAULT_TAG = "{{.ID}}"
FORMATS = ("rfc5424", "rfc5424micro", "rfc3164")
FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}
SEVERITY = {"stdout": 6, "stderr": 3}  # info, err: what Docker's syslog driver uses
#: Options this driver reads, plus the ones moord itself reads for the file it keeps.
OWN_OPTIONS = frozenset({"syslog-address", "syslog-facility", "syslog-format", "tag"})
FILE_OPTIONS = frozenset({"max-size", "max-file", "mode", "max-buffer-size", "labels",
                          "labels-regex", "env", "env-regex"})
#: A UDP datagram carries at most 65507 bytes; a longer line is cut to fit (RFC 5426
#: lets a sender truncate, and a 1 MiB line in one datagram would just fail).
MAX_DATAGRAM = 65_000
APP_NAME_MAX = 48  # RFC 5424, APP-NAME
MSGID_MAX = 32  # RFC 5424, MSGID
_TEMPLATE = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")
_FIELDS = ("ID", "FullID", "Name", "ImageName")


def parse_address(text: str) -> tuple[str, int]:
    """`udp://host[:port]` → (host, port); `InvalidLogOption` with the reason if not."""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme != "udp":
        raise InvalidLogOption(f"syslog-address: unsupported scheme in '{text}' "
                               "(this driver speaks udp://host[:port])")
    host, port = rest, DEFAULT_PORT
    if rest.startswith("["):  # [v6]:port
        host, _, after = rest[1:].partition("]")
        if after:
            port = _port(after.removeprefix(":"), text)
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
        port = _port(port_text, text)
    if not host:
        raise InvalidLogOption(f"syslog-address: no host in '{text}'")
    return host, port


def _port(text: str, address: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidLogOption(f"syslog-address: bad port in '{address}'")
    return int(text)


def facility_number(text: str) -> int:
    """A facility by name (`daemon`, `local3`…) or number (0-23)."""
    if text in FACILITIES:
        return FACILITIES[text]
    if text.isdigit() and int(text) < 24:
        return int(text)
    raise InvalidLogOption("invalid syslog facility")


def render_tag(template: str, container: LoggedContainer) -> str:
    """The tag for `container`, Docker's template fields filled in."""
    values = {"ID": container.id[:12], "FullID": container.id,
              "Name": container.name.lstrip("/"), "ImageName": container.image}
    return _TEMPLATE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _check_tag(template: str) -> None:
    for field in _TEMPLATE.findall(template):
        if field not in _FIELDS:
            raise InvalidLogOption(f"tag: unknown field .{field} (known: "
                                   + ", ".join(f".{f}" for f in _FIELDS) + ")")


def _ascii_token(text: str, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII, no spaces, not empty."""
    cleaned = "".join(c if "!" <= c <= "~" else "_" for c in text)[:limit]
    return cleaned or "-"


def format_rfc5424(pri: int, timestamp_ns: int, hostname: str, tag: str, pid: int, msg: bytes,
                   *, micro: bool = False) -> bytes:
    """`<PRI>1 TIMESTAMP HOST APP-NAME PROCID MSGID - MSG`, laid out as Docker's driver does
    (the tag is both APP-NAME and MSGID, PROCID is the engine's pid)."""
    secs, ns = divmod(timestamp_ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if micro:
        stamp += f".{ns // 1000:06d}"
    head = (f"<{pri}>1 {stamp}Z {_ascii_token(hostname, 255)} {_ascii_token(tag, APP_NAME_MAX)} "
            f"{pid} {_ascii_token(tag, MSGID_MAX)} - ")
    return head.encode() + msg


def format_rfc3164(pri: int, timestamp_ns: int, tag: str, pid: int, msg: bytes) -> bytes:
    """`<PRI>Mmm dd hh:mm:ss tag[pid]: msg`, local time, no hostname (as Docker sends it)."""
    t = time.localtime(timestamp_ns // 1_000_000_000)
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    stamp = f"{months[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    return f"<{pri}>{stamp} {tag}[{pid}]: ".encode() + msg


class SyslogDriver:
    """The `syslog` log driver: readable (moord keeps the file) and shipping (to syslog)."""

    name = NAME
    readable = True
    ships = True

    def __init__(self) -> None:
        self._hostname = socket.gethostname()
        self._pid = os.getpid()
        # one connected UDP socket per destination, shared by the containers sending there
        self._sockets: dict[tuple[str, int], trio.socket.SocketType] = {}

    def validate(self, options: Mapping[str, str]) -> Mapping[str, str]:
        """Refuse what the driver could not act on, at create time, in Docker's words."""
        for key in options:
            if key not in OWN_OPTIONS and key not in FILE_OPTIONS:
                raise InvalidLogOption(f"unknown log opt '{key}' for {NAME} log driver")
        parse_address(options.get("syslog-address", DEFAULT_ADDRESS))
        facility_number(options.get("syslog-facility", "daemon"))
        if options.get("syslog-format", FORMATS[0]) not in FORMATS:
            raise InvalidLogOption(f"Invalid syslog format: {options['syslog-format']}")
        _check_tag(options.get("tag", DEFAULT_TAG))
        return dict(options)

    async def ship(self, container: LoggedContainer, records: Sequence[LogRecord]) -> None:
        """Send each record as one datagram, in order. An error (say the port refuses)
        propagates: moord logs it and drops this batch, the file keeps every line."""
        options = container.options
        sock = await self._socket(parse_address(options.get("syslog-address", DEFAULT_ADDRESS)))
        tag = render_tag(options.get("tag", DEFAULT_TAG), container)
        facility = facility_number(options.get("syslog-facility", "daemon"))
        fmt = options.get("syslog-format", FORMATS[0])
        for record in records:
            message = self._message(fmt, facility * 8 + SEVERITY[record.stream], record, tag)
            await sock.send(message[:MAX_DATAGRAM])

    def _message(self, fmt: str, pri: int, record: LogRecord, tag: str) -> bytes:
        msg = record.data.removesuffix(b"\n")
        if fmt == "rfc3164":
            return format_rfc3164(pri, record.timestamp_ns, tag, self._pid, msg)
        return format_rfc5424(pri, record.timestamp_ns, self._hostname, tag, self._pid, msg,
                              micro=fmt == "rfc5424micro")

    async def _socket(self, address: tuple[str, int]) -> trio.socket.SocketType:
        sock = self._sockets.get(address)
        if sock is None:
            host, port = address
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            family, kind, proto, _, sockaddr = infos[0]
            sock = trio.socket.socket(family, kind, proto)
            await sock.connect(sockaddr)
            kept = self._sockets.setdefault(address, sock)
            if kept is not sock:  # another container made one meanwhile: keep the first
                sock.close()
            sock = kept
        return sock


@hookimpl
def moorage_log_drivers() -> Sequence[SyslogDriver]:
    """The hook moord calls at start-up: this package provides one driver."""
    return [SyslogDriver()]
