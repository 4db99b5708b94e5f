"""Daemon configuration: `/etc/moorage/daemon.toml`, every key also a `moord` flag.

Precedence: built-in default < config file < command-line flag. Keys use dashes in
TOML and flags alike (`data-root`, `--data-root`).
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

import attrs

from engine import __version__
from engine.alerts.labels import check_url
from engine.units import ram_in_bytes

DEFAULT_CONFIG_FILE = Path("/etc/moorage/daemon.toml")


def _path(value: str | Path) -> Path:
    return Path(value)


def _string_list(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A TOML list, or a flag given several times / with commas."""
    items = [value] if isinstance(value, str) else list(value)
    return tuple(part.strip() for item in items for part in str(item).split(",") if part.strip())


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_TARGETS = ("auto", "journal", "file", "stderr")


def _level(value: str) -> str:
    """`INFO` and dockerd's `warn` mean what they say."""
    value = str(value).lower()
    return "warning" if value == "warn" else value


def _size(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    try:
        ram_in_bytes(value)
    except ValueError:
        raise ValueError(f"{attribute.name.replace('_', '-')}: {value!r} is not a size "
                         f"such as 10m") from None


def _notify_url(_instance: object, _attribute: object, value: str) -> None:
    if value:
        check_url(value)


@attrs.define
class DaemonConfig:
    """What moord is told at start-up. Field docs double as `--help` text."""

    data_root: Path = attrs.field(
        default=Path("/var/lib/moorage"), converter=_path,
        metadata={"help": "where images, containers and state live"})
    exec_root: Path = attrs.field(
        default=Path("/run/moorage"), converter=_path,
        metadata={"help": "runtime state: the OCI runtime's root, attach sockets, pidfile"})
    host: str = attrs.field(
        default="unix:///run/moorage/moorage.sock",
        metadata={"help": "API socket, unix:///path"})
    socket_mode: str = attrs.field(default="0660", metadata={"help": "API socket permissions"})
    socket_group: str = attrs.field(
        default="", metadata={"help": "group that owns the API socket (if it exists)"})
    runtime: str = attrs.field(
        default="crun", metadata={"help": "default OCI runtime: crun or runc"})
    crun_path: str = attrs.field(default="/usr/bin/crun", metadata={"help": "crun binary"})
    runc_path: str = attrs.field(default="/usr/sbin/runc", metadata={"help": "runc binary"})
    conmon_path: str = attrs.field(default="/usr/bin/conmon", metadata={"help": "conmon binary"})
    init_path: str = attrs.field(
        default="", metadata={"help": "static init for --init (default: tini-static or catatonit)"})
    seccomp_profile: str = attrs.field(
        default="/usr/share/containers/seccomp.json",
        metadata={"help": "seccomp profile (containers-common format); 'unconfined' for none"})
    cgroup_parent: str = attrs.field(
        default="moorage", metadata={"help": "cgroup (cgroupfs path) that holds containers"})
    log_level: str = attrs.field(
        default="info", converter=_level, validator=attrs.validators.in_(LOG_LEVELS),
        metadata={"help": "debug, info, warning, error"})
    log_target: str = attrs.field(
        default="auto", validator=attrs.validators.in_(LOG_TARGETS),
        metadata={"help": "where moord's own log goes: journal, file, stderr, or auto (the "
                          "journal under systemd, stderr on a terminal, else the file)"})
    log_file: Path = attrs.field(
        default=Path("/var/log/moorage/moord.log"), converter=_path,
        metadata={"help": "moord's log file (log-target file), rotated by size"})
    log_file_max_size: str = attrs.field(
        default="10m", validator=_size,
        metadata={"help": "size at which moord's log file rotates (k, m, g: binary units)"})
    log_file_max_count: int = attrs.field(
        default=5, converter=int,
        metadata={"help": "rotated copies of moord's log file kept (moord.log.1 ...)"})
    pidfile: str = attrs.field(default="", metadata={"help": "pidfile (default: <exec-root>/moord.pid)"})
    stop_containers_on_shutdown: bool = attrs.field(
        default=False,
        metadata={"help": "stop containers (with their grace periods) when moord shuts down"})
    restart_delay_initial: float = attrs.field(
        default=0.1, converter=float,
        metadata={"help": "first delay before a restart policy restarts a container (s)"})
    restart_delay_max: float = attrs.field(
        default=60.0, converter=float, metadata={"help": "the restart delay doubles up to this (s)"})
    restart_delay_reset: float = attrs.field(
        default=10.0, converter=float,
        metadata={"help": "a run this long (s) resets the restart delay to its first value"})
    shutdown_timeout: float = attrs.field(
        default=15.0, converter=float,
        metadata={"help": "how long TERM waits for requests in flight before closing them (s)"})
    log_driver: str = attrs.field(
        default="json-file", metadata={"help": "default log driver for new containers"})
    log_max_size: str = attrs.field(
        default="20m", metadata={"help": "default size at which a container's log rotates (-1: never)"})
    log_max_file: int = attrs.field(
        default=5, converter=int, metadata={"help": "default number of log files kept per container"})
    network_prefix: str = attrs.field(
        default="moorage",
        metadata={"help": "names this daemon's bridges, veths and nftables table (1-7 chars)"})
    default_bridge_subnet: str = attrs.field(
        default="", metadata={"help": "subnet of the default bridge network (default: 172.17.0.0/16 "
                                      "or the first free pool)"})
    ipv6: bool = attrs.field(
        default=False, metadata={"help": "IPv6 on the default bridge network too (Docker's ipv6)"})
    fixed_cidr_v6: str = attrs.field(
        default="", metadata={"help": "IPv6 subnet of the default bridge network with --ipv6 "
                                      "(default: a /64 of this host's unique local prefix)"})
    registry_mirrors: tuple[str, ...] = attrs.field(
        default=(), converter=_string_list,
        metadata={"help": "mirrors tried before Docker Hub for docker.io images (repeatable)",
                  "repeatable": True})
    insecure_registries: tuple[str, ...] = attrs.field(
        default=(), converter=_string_list,
        metadata={"help": "registries (host[:port] or CIDR) reached over plain HTTP or unchecked "
                          "TLS; loopback registries always are (repeatable)",
                  "repeatable": True})
    max_concurrent_downloads: int = attrs.field(
        default=3, converter=int, metadata={"help": "layers downloaded at once, over all pulls"})
    max_concurrent_uploads: int = attrs.field(
        default=5, converter=int, metadata={"help": "layers uploaded at once by a push"})
    metrics_addr: str = attrs.field(
        default="", metadata={"help": "HOST:PORT where Prometheus metrics are served on /metrics "
                                      "(default: none, as dockerd's)"})
    plugin_socket_dir: Path = attrs.field(
        default=Path("/run/docker/plugins"), converter=_path,
        metadata={"help": "where Docker plugins' sockets are looked for (NAME.sock, "
                          "NAME/NAME.sock)"})
    plugin_spec_dirs: tuple[str, ...] = attrs.field(
        default=("/etc/docker/plugins", "/usr/lib/docker/plugins"), converter=_string_list,
        metadata={"help": "where Docker plugins' NAME.spec and NAME.json files are looked for "
                          "(repeatable)", "repeatable": True})
    plugin_timeout: float = attrs.field(
        default=30.0, converter=float, validator=attrs.validators.gt(0),
        metadata={"help": "how long moord waits for a Docker plugin to appear and answer, and "
                          "the deadline of each call to it (s; Docker's is 30)"})
    authorization_plugins: tuple[str, ...] = attrs.field(
        default=(), converter=_string_list,
        metadata={"help": "Docker authorization plugins asked about every API request, in "
                          "order (repeatable)", "repeatable": True})
    durable_store: bool = attrs.field(
        default=True, metadata={"help": "fsync every state change (turn off only for throw-away hosts)"})
    driver_timeout: float = attrs.field(
        default=30.0, converter=float, validator=attrs.validators.gt(0),
        metadata={"help": "seconds a network or volume driver's call may take before the "
                          "request that needed it fails (docs/plugins.md, Deadlines)"})
    # the API socket's clients (docs/architecture.md, "Stalled and greedy clients"); 0: no limit
    api_header_timeout: float = attrs.field(
        default=30.0, converter=float, validator=attrs.validators.ge(0.0),
        metadata={"help": "seconds a client has to send a whole request head, counted from "
                          "the accept or from the first byte of a keep-alive connection's "
                          "next request; then the connection is closed (408 if part of a "
                          "head came; 0: no limit)"})
    api_idle_timeout: float = attrs.field(
        default=300.0, converter=float, validator=attrs.validators.ge(0.0),
        metadata={"help": "seconds a keep-alive connection may wait for its next request "
                          "before moord closes it (0: forever, as dockerd)"})
    api_body_timeout: float = attrs.field(
        default=120.0, converter=float, validator=attrs.validators.ge(0.0),
        metadata={"help": "seconds a request body may pause (no byte at all) before the "
                          "request is cut with a 408; an upload that keeps moving, however "
                          "slowly, is never cut (0: no limit)"})
    api_max_connections_per_process: int = attrs.field(
        default=2048, converter=int, validator=attrs.validators.ge(0),
        metadata={"help": "API connections one client process (SO_PEERCRED) may hold open; "
                          "more are refused with 429 (0: no limit)"})
    api_max_connections_per_user: int = attrs.field(
        default=8192, converter=int, validator=attrs.validators.ge(0),
        metadata={"help": "API connections all processes of one uid may hold open together; "
                          "more are refused with 429 (0: no limit)"})
    notify_url: str = attrs.field(
        default="", validator=_notify_url,
        metadata={"help": "http(s) URL that alerts are POSTed to: unhealthy, OOM kill, death "
                          "under a restart policy, broken restart loop (docs/supervision.md)"})
    notify_timeout: float = attrs.field(
        default=10.0, converter=float, validator=attrs.validators.gt(0),
        metadata={"help": "how long one attempt to deliver an alert may take (s); failed "
                          "ones are retried, 1 s then doubling, for up to 15 minutes"})

    @property
    def socket_path(self) -> Path:
        if not self.host.startswith("unix://"):
            raise ValueError(f"only unix:// hosts are supported, not {self.host!r}")
        return Path(self.host.removeprefix("unix://"))

    @property
    def pidfile_path(self) -> Path:
        return Path(self.pidfile) if self.pidfile else self.exec_root / "moord.pid"

    def runtime_path(self, name: str) -> str:
        paths = {"crun": self.crun_path, "runc": self.runc_path}
        if name not in paths:
            raise ValueError(f"unknown runtime {name!r}: crun or runc")
        return paths[name]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moord", description="the moorage container engine daemon")
    parser.add_argument("--version", action="version", version=f"moord version {__version__}")
    parser.add_argument("--config-file", default=None,
                        help=f"TOML configuration (default {DEFAULT_CONFIG_FILE} if it exists)")
    parser.add_argument("-H", dest="host", default=None, help="alias of --host")
    for field in attrs.fields(DaemonConfig):
        if field.name == "host":
            parser.add_argument("--host", dest="host", default=None, help=field.metadata.get("help"))
            continue
        if field.metadata.get("repeatable"):
            parser.add_argument(_flag(field.name), _flag(field.name).removesuffix("s")
                                .replace("registrie", "registry"), dest=field.name,
                                default=None, action="append", help=field.metadata.get("help"))
        elif field.type in (bool, "bool"):
            parser.add_argument(_flag(field.name), dest=field.name, default=None,
                                action=argparse.BooleanOptionalAction, help=field.metadata.get("help"))
        else:
            parser.add_argument(_flag(field.name), dest=field.name, default=None,
                                help=field.metadata.get("help"))
    return parser


def load_config(argv: list[str] | None = None) -> DaemonConfig:
    args = build_arg_parser().parse_args(argv)
    values: dict[str, Any] = {}
    config_file = Path(args.config_file) if args.config_file else DEFAULT_CONFIG_FILE
    if args.config_file or config_file.exists():
        values.update(read_config_file(config_file))
    for field in attrs.fields(DaemonConfig):
        flag_value = getattr(args, field.name, None)
        if flag_value is not None:
            values[field.name] = flag_value
    try:
        return DaemonConfig(**values)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"moord: invalid configuration: {exc}") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a daemon.toml; unknown keys are an error so typos don't pass silently."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise SystemExit(f"moord: config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SystemExit(f"moord: {path}: {exc}") from None
    known = {f.name for f in attrs.fields(DaemonConfig)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in known:
            raise SystemExit(f"moord: {path}: unknown key {key!r}")
        values[name] = value
    return values
