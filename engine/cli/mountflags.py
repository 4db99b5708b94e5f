"""`-v`, `--mount`, `--tmpfs` as the docker CLI turns them into a create request.

- `-v DST` (one path) is an anonymous volume: it goes to `Config.Volumes`; anything
  with a source goes to `HostConfig.Binds`, a source starting with `.` made absolute
  against the current directory first (docker does that since 23).
- `--mount` is a CSV list of `key=value` fields, sent as one `HostConfig.Mounts` object;
  the daemon validates it (so its errors are the daemon's, as with docker).
- `--tmpfs DST[:OPTIONS]` goes to `HostConfig.Tmpfs`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from typing import Any

from engine.cli.options import OptionError
from engine.units import ram_in_bytes

_TRUE = ("", "1", "true", "yes")
_FALSE = ("0", "false", "no")


def split_volumes(values: Iterable[str], cwd: str | None = None) -> tuple[list[str], list[str]]:
    """`-v` values → (`HostConfig.Binds`, `Config.Volumes` keys)."""
    binds: list[str] = []
    anonymous: list[str] = []
    for value in values:
        if not value:
            raise OptionError("invalid empty volume spec")
        source, sep, rest = value.partition(":")
        if not sep:
            anonymous.append(value)
            continue
        if source.startswith("."):
            source = os.path.abspath(os.path.join(cwd or os.getcwd(), source))
            value = f"{source}:{rest}"
        binds.append(value)
    return binds, anonymous


def _flag(key: str, value: str | None) -> bool:
    if value is None or value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise OptionError(f"invalid value for {key}: {value}")


def _key_value(key: str, value: str | None) -> tuple[str, str]:
    inner_key, sep, inner_value = (value or "").partition("=")
    if not sep or not inner_key:
        raise OptionError(f"invalid value for {key}: {value}, expected KEY=VALUE")
    return inner_key, inner_value


def parse_mount(value: str) -> dict[str, Any]:
    """One `--mount` flag as a `HostConfig.Mounts` entry (docker's field names and aliases)."""
    try:
        [fields] = list(csv.reader([value]))
    except (csv.Error, ValueError):
        raise OptionError(f"invalid argument {value!r} for \"--mount\" flag") from None
    mount: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    volume: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    for field in fields:
        key, sep, raw = field.partition("=")
        key = key.strip().lower()
        arg: str | None = raw if sep else None
        if arg is None and key not in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive",
                                       "bind-create-mountpoint"):
            raise OptionError(f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            mount["Type"] = arg
        elif key in ("source", "src"):
            mount["Source"] = arg
        elif key in ("target", "dst", "destination"):
            mount["Target"] = arg
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _flag(key, arg)
        elif key == "consistency":
            mount["Consistency"] = arg
        elif key == "bind-propagation":
            bind["Propagation"] = arg
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _flag(key, arg)
        elif key == "bind-recursive":
            if arg not in ("enabled", "disabled", "writable", "readonly"):
                raise OptionError(f"invalid value for {key}: {arg} (enabled, disabled, writable "
                                  "or readonly)")
            bind["NonRecursive"] = arg == "disabled"
        elif key == "bind-create-mountpoint":
            bind["CreateMountpoint"] = _flag(key, arg)
        elif key == "volume-nocopy":
            volume["NoCopy"] = _flag(key, arg)
        elif key == "volume-label":
            k, v = _key_value(key, arg)
            volume.setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = arg
        elif key == "volume-opt":
            k, v = _key_value(key, arg)
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "volume-subpath":
            volume["Subpath"] = arg
        elif key == "tmpfs-size":
            try:
                tmpfs["SizeBytes"] = ram_in_bytes(arg or "")
            except ValueError:
                raise OptionError(f"invalid value for {key}: {arg}") from None
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(arg or "", 8)
            except ValueError:
                raise OptionError(f"invalid value for {key}: {arg}") from None
        else:
            raise OptionError(f"unexpected key '{key}' in '{field}'")
    kind = mount["Type"]
    if "Target" not in mount:
        raise OptionError("target is required")
    for options, name, prefix in ((bind, "BindOptions", "bind"), (volume, "VolumeOptions", "volume"),
                                  (tmpfs, "TmpfsOptions", "tmpfs")):
        if not options:
            continue
        if kind != prefix:
            raise OptionError(f"cannot mix '{prefix}-*' options with mount type '{kind}'")
        mount[name] = options
    return mount


def parse_tmpfs(values: Iterable[str]) -> dict[str, str]:
    """`--tmpfs DST[:OPTIONS]` flags → `HostConfig.Tmpfs`."""
    result: dict[str, str] = {}
    for value in values:
        target, _, options = value.partition(":")
        if not target:
            raise OptionError(f"invalid tmpfs specification: {value!r}")
        result[target] = options
    return result


def mount_config(*, volumes: Iterable[str] = (), mounts: Iterable[str] = (),
                 tmpfs: Iterable[str] = (), volumes_from: Iterable[str] = (),
                 read_only: bool = False, volume_driver: str | None = None) -> dict[str, Any]:
    """The create body's keys for these flags: `{"Volumes": …, "HostConfig": {…}}`, set ones only."""
    binds, anonymous = split_volumes(volumes)
    host: dict[str, Any] = {}
    if binds:
        host["Binds"] = binds
    parsed = [parse_mount(m) for m in mounts]
    if parsed:
        host["Mounts"] = parsed
    parsed_tmpfs = parse_tmpfs(tmpfs)
    if parsed_tmpfs:
        host["Tmpfs"] = parsed_tmpfs
    sources = list(volumes_from)
    if sources:
        host["VolumesFrom"] = sources
    if read_only:
        host["ReadonlyRootfs"] = True
    if volume_driver:
        host["VolumeDriver"] = volume_driver
    config: dict[str, Any] = {"HostConfig": host}
    if anonymous:
        config["Volumes"] = {path: {} for path in anonymous}
    return config


__all__ = ["mount_config", "parse_mount", "parse_tmpfs", "split_volumes"]
