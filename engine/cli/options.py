"""Turning Docker-style flag values into API values, without any I/O beyond files named.

Kept apart from the click commands so each rule (how `-e K` finds its value, what
`--since 10m` means) is a plain function with its own tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from engine.durations import SECOND, DurationError, parse_duration
from engine.timestamps import TimestampError, get_timestamp


class OptionError(Exception):
    """A flag's value is malformed; the message names the flag like Docker does."""


# --- environment and labels ----------------------------------------------------------

def env_entry(value: str, environ: Mapping[str, str] | None = None) -> str:
    """One `-e` value: `K=V` as given; a bare `K` takes its value from our environment.

    A bare name that is not set here is passed on as it is, like docker does (the
    daemon then leaves it out).
    """
    key, sep, _ = value.partition("=")
    if not key:
        raise OptionError(f"invalid environment variable: {value}")
    if sep:
        return value
    env = os.environ if environ is None else environ
    if key in env:
        return f"{key}={env[key]}"
    return value


def key_value_map(values: Iterable[str], flag: str,
                  expected: str = "expected key=value") -> dict[str, str]:
    """`KEY=VALUE` flags as a map (a value may hold `=`; a later key wins); one without
    `=` or a key is docker's `invalid argument "…" for "<flag>" flag: <expected>`, where
    `{value}` in `expected` stands for the argument."""
    result: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise OptionError(f'invalid argument "{value}" for "{flag}" flag: '
                              + expected.format(value=value))
        result[key] = val
    return result


def parse_kv_file(text: str, source: str, lookup: Mapping[str, str] | None) -> list[str]:
    """Docker's env-file/label-file format.

    Leading whitespace is dropped, blank and `#` lines skipped, the rest kept as it is
    (trailing spaces are part of the value). A line with no `=` is a name whose value
    comes from `lookup` (our environment), or which is dropped if unset there.
    """
    entries: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip("\ufeff") if number == 1 else raw
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, _ = line.partition("=")
        if not key:
            raise OptionError(f"{source}: no variable name on line '{line}'")
        if any(ch.isspace() for ch in key):
            raise OptionError(f"{source}: variable '{key}' contains whitespaces")
        if sep:
            entries.append(line)
        elif lookup is not None and key in lookup:
            entries.append(f"{key}={lookup[key]}")
    return entries


def read_kv_file(path: str, lookup: Mapping[str, str] | None) -> list[str]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise OptionError(f"open {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OptionError(f"{path}: invalid utf8 bytes") from None
    return parse_kv_file(text, path, lookup)


def build_env(values: Sequence[str], env_files: Sequence[str],
              environ: Mapping[str, str] | None = None) -> list[str]:
    """Env-file entries first, then `-e` values, so a flag overrides a file."""
    env = os.environ if environ is None else environ
    entries: list[str] = []
    for path in env_files:
        entries.extend(read_kv_file(path, env))
    entries.extend(env_entry(v, env) for v in values)
    return entries


def build_labels(values: Sequence[str], label_files: Sequence[str]) -> dict[str, str]:
    """`-l k=v` (a bare `k` means an empty value), label files first."""
    entries: list[str] = []
    for path in label_files:
        entries.extend(read_kv_file(path, None))
    entries.extend(values)
    labels: dict[str, str] = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        if not key:
            raise OptionError(f"invalid label '{entry}': empty name")
        labels[key] = value
    return labels


def build_filters(values: Iterable[str]) -> str | None:
    """`-f key=value` flags as the API's JSON: `{"key": {"value": true}}`."""
    filters: dict[str, dict[str, bool]] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep:
            raise OptionError(f"bad format of filter (expected name=value): {value}")
        filters.setdefault(key.strip().lower(), {})[val.strip()] = True
    return json.dumps(filters, separators=(",", ":")) if filters else None


# --- time ----------------------------------------------------------------------------

def parse_go_duration(value: str) -> float | None:
    """Go's `time.ParseDuration` (`1h30m`, `1.5s`, `-10m`) in seconds; None if not one."""
    try:
        return parse_duration(value.strip()) / SECOND
    except DurationError:
        return None


def api_timestamp(value: str, now: float | None = None) -> str:
    """A `--since`/`--until` value as the API wants it: `<seconds>.<nanoseconds>`.

    Docker's GetTimestamp (`engine.timestamps`): a Go duration counted back from now
    (`10m`, `1h30m`), an RFC 3339 date or date-time (local time if it has no zone), or
    unix seconds (passed through as given).
    """
    try:
        return get_timestamp(value, None if now is None else round(now * SECOND))
    except TimestampError as exc:
        raise OptionError(exc.message) from None


# --- run/create ----------------------------------------------------------------------

_POLICIES = ("no", "always", "unless-stopped", "on-failure")


def restart_policy(value: str | None) -> dict[str, Any]:
    """`--restart no|always|unless-stopped|on-failure[:N]` as `RestartPolicy`."""
    if not value:
        return {"Name": "no", "MaximumRetryCount": 0}
    name, sep, count_text = value.partition(":")
    count = 0
    if sep:
        try:
            count = int(count_text)
        except ValueError:
            raise OptionError(
                f"invalid restart policy format: maximum retry count must be an integer: "
                f"{count_text}") from None
        if count < 0:
            raise OptionError("invalid restart policy format: "
                              "maximum retry count cannot be negative")
        if name != "on-failure":
            raise OptionError(
                f"invalid restart policy format: maximum retry count cannot be used with "
                f"restart policy '{name}'")
    if name not in _POLICIES:
        raise OptionError(f"invalid restart policy format: no such policy: {name}")
    return {"Name": name, "MaximumRetryCount": count}


HEALTH_ACTIONS = ("none", "kill", "restart", "stop")


def duration_ns(value: str | None, flag: str) -> int:
    """A Go duration flag value (`30s`, `1m30s`, `500ms`) in nanoseconds; unset is 0."""
    if value is None or value == "":
        return 0
    try:
        return parse_duration(value.strip())
    except DurationError as exc:
        raise OptionError(f'invalid argument "{value}" for "{flag}" flag: {exc.message}') from None


def health_config(*, cmd: str | None = None, interval: str | None = None,
                  timeout: str | None = None, start_period: str | None = None,
                  start_interval: str | None = None, retries: int | None = None,
                  disabled: bool = False, on_failure: str | None = None) -> dict[str, Any] | None:
    """The `--health-*` flags as the create body's `Healthcheck` (None: the image's stands).

    Zero durations mean "the image's, or the default", as with docker; `--health-on-failure`
    alone sends only `OnFailure`, so the image's check is kept and acted upon.
    """
    durations = {
        "Interval": duration_ns(interval, "--health-interval"),
        "Timeout": duration_ns(timeout, "--health-timeout"),
        "StartPeriod": duration_ns(start_period, "--health-start-period"),
        "StartInterval": duration_ns(start_interval, "--health-start-interval"),
    }
    count = retries or 0
    have_settings = bool(cmd) or count != 0 or any(durations.values())
    if disabled:
        if have_settings or on_failure not in (None, "none"):
            raise OptionError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if on_failure is not None and on_failure not in HEALTH_ACTIONS:
        raise OptionError(f"invalid --health-on-failure value {on_failure!r}: "
                          f"one of {', '.join(HEALTH_ACTIONS)}")
    config: dict[str, Any] = {}
    if have_settings:
        for key, ns in durations.items():
            if ns < 0:
                flag = "--health-" + {"StartPeriod": "start-period",
                                      "StartInterval": "start-interval"}.get(key, key.lower())
                raise OptionError(f"{flag} cannot be negative")
        if count < 0:
            raise OptionError("--health-retries cannot be negative")
        config = {"Test": ["CMD-SHELL", cmd] if cmd else None, **durations, "Retries": count}
    if on_failure is not None:
        config["OnFailure"] = on_failure
    return config or None


def split_reference(ref: str) -> tuple[str, str]:
    """`repo[:tag]` → (repo, tag) with tag defaulting to `latest`; a digest stays in repo."""
    if "@" in ref:
        return ref, ""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, "latest"


def normalized_repo(repo: str) -> str:
    """The full name a registry pull uses: `busybox` → `docker.io/library/busybox`."""
    first, sep, _ = repo.partition("/")
    if not sep:
        return f"docker.io/library/{repo}"
    if "." in first or ":" in first or first == "localhost":
        return repo
    return f"docker.io/{repo}"


def familiar_reference(ref: str) -> str:
    """What docker echoes back in messages: `busybox` → `busybox:latest`."""
    repo, tag = split_reference(ref)
    return f"{repo}:{tag}" if tag else repo


@attrs.define
class ContainerOptions:
    """The `run`/`create` flags after parsing; `create_body` makes the API request."""

    image: str
    command: list[str] = attrs.field(factory=list)
    detach: bool = False
    interactive: bool = False
    tty: bool = False
    auto_remove: bool = False
    name: str | None = None
    env: list[str] = attrs.field(factory=list)
    labels: dict[str, str] = attrs.field(factory=dict)
    entrypoint: str | None = None
    workdir: str = ""
    user: str = ""
    init: bool = False
    network: str | None = None
    restart: dict[str, Any] = attrs.field(factory=lambda: restart_policy(None))
    stop_signal: str | None = None
    stop_timeout: int | None = None
    hostname: str = ""
    console_size: tuple[int, int] = (0, 0)
    healthcheck: dict[str, Any] | None = None
    mounts: dict[str, Any] = attrs.field(factory=dict)  # mountflags.mount_config()
    network_flags: Any = None  # netflags.NetworkFlags: -p, -P, --dns*, --add-host, --ip, ...
    resources: Any = None  # resourceflags.ResourceFlags: --memory, --cpus, --ulimit, ...
    host_flags: Any = None  # hostflags.HostFlags: --privileged, --cap-add, --log-opt, ...

    def create_body(self) -> dict[str, Any]:
        attach_out = not self.detach
        attach_in = self.interactive and not self.detach
        config: dict[str, Any] = {
            "Hostname": self.hostname,
            "Domainname": "",
            "User": self.user,
            "AttachStdin": attach_in,
            "AttachStdout": attach_out,
            "AttachStderr": attach_out,
            "Tty": self.tty,
            "OpenStdin": self.interactive,
            "StdinOnce": attach_in,
            "Env": self.env or None,
            "Cmd": self.command or None,
            "Image": self.image,
            "WorkingDir": self.workdir,
            "Entrypoint": None if self.entrypoint is None else [self.entrypoint],
            "Labels": self.labels,
        }
        if self.stop_signal:
            config["StopSignal"] = self.stop_signal
        if self.stop_timeout is not None:
            config["StopTimeout"] = self.stop_timeout
        if self.healthcheck is not None:
            config["Healthcheck"] = self.healthcheck
        host_config: dict[str, Any] = {
            "NetworkMode": self.network or "default",
            "RestartPolicy": self.restart,
            "AutoRemove": self.auto_remove,
            "ConsoleSize": list(self.console_size),
        }
        if self.init:
            host_config["Init"] = True
        host_config.update(self.mounts.get("HostConfig", {}))
        if self.resources is not None:
            host_config.update(self.resources.fields())
        if self.mounts.get("Volumes"):
            config["Volumes"] = self.mounts["Volumes"]
        config["HostConfig"] = host_config
        config["NetworkingConfig"] = {"EndpointsConfig": {}}
        if self.network_flags is not None:
            self.network_flags.apply(config)
        if self.host_flags is not None:
            self.host_flags.apply(config)
        return config
