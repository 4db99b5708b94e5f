"""Engine-run health probes as labels: `moorage.health.http=:8080/healthz`, `.tcp=:5432`.

Labels carry the option so that every client can set it (`docker run --label`, compose
`labels:`, the SDKs); moor's `--health-http`/`--health-tcp` flags become the same labels.
This module only reads them: moord checks them at create (a bad one is a 400 naming the
label) and the health task reads them again at each start (`engine.containers.netprobe`
runs the probe). Pure: standard library, attrs and row 0, so moor may import it.

The labels, all under `moorage.health.`:

- `http=[HOST]:PORT[/PATH]`: an HTTP GET; `tcp=[HOST]:PORT`: a TCP connect. One of them.
  HOST is an IP address (IPv6 in brackets), 127.0.0.1 when left out; PATH is `/` when
  left out. An empty value is the same as no label (it cancels one an image sets).
- `interval`, `timeout`, `start-period`, `start-interval`: Go durations, as Docker's
  `--health-*` flags (0 or unset: Docker's defaults 30s, 30s, 0s, 5s); `retries`: a
  whole number (0 or unset: 3). They need `http` or `tcp`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import attrs

from engine.durations import MILLISECOND, DurationError, go_quote, parse_duration
from engine.errors import InvalidParameter

PREFIX = "moorage.health."
HTTP_LABEL = PREFIX + "http"
TCP_LABEL = PREFIX + "tcp"
INTERVAL_LABEL = PREFIX + "interval"
TIMEOUT_LABEL = PREFIX + "timeout"
RETRIES_LABEL = PREFIX + "retries"
START_PERIOD_LABEL = PREFIX + "start-period"
START_INTERVAL_LABEL = PREFIX + "start-interval"
#: the duration labels, by the ProbeSpec field each sets
DURATION_LABELS = {
    "interval": INTERVAL_LABEL,
    "timeout": TIMEOUT_LABEL,
    "start_period": START_PERIOD_LABEL,
    "start_interval": START_INTERVAL_LABEL,
}
KNOWN = (HTTP_LABEL, TCP_LABEL, *DURATION_LABELS.values(), RETRIES_LABEL)
DEFAULT_HOST = "127.0.0.1"
MAX_RETRIES = (1 << 31) - 1  # Docker's Retries is a Go int; keep it within int32
KINDS = ("http", "tcp")


class ProbeLabelError(InvalidParameter):
    """A `moorage.health.*` label moord can't use (a 400 at create); `label` and `why` let
    moor say it of the flag that made the label."""

    def __init__(self, message: str, label: str = "", why: str = "") -> None:
        super().__init__(message)
        self.label = label
        self.why = why or message


def _valid_port(_: object, __: object, port: int) -> None:
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is outside 1-65535")


@attrs.frozen
class Target:
    """What a probe connects to, inside the container's network namespace."""

    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    host: str
    port: int = attrs.field(validator=_valid_port)
    path: str = ""  # an HTTP probe's request target; "" for TCP

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.host)

    @property
    def address(self) -> str:
        """`127.0.0.1:8080`, `[::1]:8080`: as messages name it."""
        return f"[{self.host}]:{self.port}" if self.ip.version == 6 else f"{self.host}:{self.port}"


@attrs.frozen
class ProbeSpec:
    """A probe and its timing (durations in ns, 0 for Docker's defaults), as in a Healthcheck."""

    target: Target
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


def _bad(label: str, value: str, why: str) -> ProbeLabelError:
    return ProbeLabelError(f"invalid label {label}={go_quote(value)}: {why}", label, why)


def _split_host(label: str, value: str) -> tuple[str, str]:
    """`[HOST]:PORT…` → (host, ":PORT…"); IPv6 addresses come in brackets."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise _bad(label, value, "an IPv6 address needs its closing ]")
        return value[1:end], value[end + 1:]
    colon = value.find(":")
    if colon < 0:
        return value, ""
    return value[:colon], value[colon:]


def parse_target(kind: str, value: str) -> Target:
    """The value of `moorage.health.<kind>` (http or tcp) as a Target; ProbeLabelError says why not."""
    label = PREFIX + kind
    form = "[HOST]:PORT/PATH, as :8080/healthz" if kind == "http" else "[HOST]:PORT, as :5432"
    host, rest = _split_host(label, value)
    if not rest.startswith(":"):
        raise _bad(label, value, f"expected {form}")
    digits = ""
    for ch in rest[1:]:
        if not "0" <= ch <= "9":
            break
        digits += ch
    after = rest[1 + len(digits):]
    if not digits:
        raise _bad(label, value, f"no port (expected {form}; IPv6 addresses go in brackets)")
    port = int(digits)
    if not 1 <= port <= 65535:
        raise _bad(label, value, "the port must be between 1 and 65535")
    if host:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise _bad(label, value, f"the host must be an IP address ({DEFAULT_HOST} "
                                     "when left out), not a name") from None
        if value.startswith("[") != (ip.version == 6) or "%" in host:
            raise _bad(label, value, "an IPv6 address goes in brackets (without a zone), "
                                     "an IPv4 address without")
        host = ip.compressed
    path = ""
    if kind == "tcp":
        if after:
            raise _bad(label, value, "a TCP probe takes no path")
    else:
        path = after or "/"
        if not path.startswith("/"):
            raise _bad(label, value, "the path must start with / (as in :8080/healthz)")
        if any(not "!" <= ch <= "~" for ch in path):
            raise _bad(label, value, "the path must be printable ASCII without spaces "
                                     "(percent-encode the rest)")
    return Target(kind=kind, host=host or DEFAULT_HOST, port=port, path=path)


def _duration(label: str, value: str) -> int:
    try:
        ns = parse_duration(value)
    except DurationError as exc:
        raise _bad(label, value, exc.message) from None
    if ns < 0:
        raise _bad(label, value, "a duration cannot be negative")
    if 0 < ns < MILLISECOND:  # Docker's rule for Healthcheck durations
        raise _bad(label, value, "a duration cannot be less than 1ms")
    return ns


def _retries(value: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise _bad(RETRIES_LABEL, value, "expected a whole number (0 for the default, 3)")
    count = int(value)
    if count > MAX_RETRIES:
        raise _bad(RETRIES_LABEL, value, f"at most {MAX_RETRIES}")
    return count


def probe_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The `moorage.health.*` labels that are set (an empty value is the same as none)."""
    return {k: v for k, v in labels.items() if k.startswith(PREFIX) and v != ""}


def probe_from_labels(labels: Mapping[str, str]) -> ProbeSpec | None:
    """The probe a container's labels ask for; None without one; ProbeLabelError for a
    label moord can't use (unknown, malformed, both kinds, timing without a probe)."""
    mine = probe_labels(labels)
    for name in sorted(mine):
        if name not in KNOWN:
            raise ProbeLabelError(f"unknown label {name}: moorage's probe labels are "
                                  f"{', '.join(KNOWN)}")
    kinds = [k for k in KINDS if PREFIX + k in mine]
    if len(kinds) > 1:
        raise ProbeLabelError(f"conflicting labels {HTTP_LABEL} and {TCP_LABEL}: "
                              "a container has one probe")
    if not kinds:
        if mine:
            raise ProbeLabelError(
                f"label {sorted(mine)[0]} needs {HTTP_LABEL} or {TCP_LABEL} (a Docker health "
                "check takes --health-interval, --health-timeout, … instead)")
        return None
    kind = kinds[0]
    target = parse_target(kind, mine[PREFIX + kind])
    durations = {field: _duration(label, mine[label])
                 for field, label in DURATION_LABELS.items() if label in mine}
    retries = _retries(mine[RETRIES_LABEL]) if RETRIES_LABEL in mine else 0
    return ProbeSpec(target=target, retries=retries, **durations)
