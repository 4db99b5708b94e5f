"""What a create request asks to mount, with Docker's rules and Docker's words.

Sources, in the order Docker applies them (moby `registerMountPoints`, then the
image's volumes at create):

1. `--volumes-from` mounts (`volumes_from`), which anything the container mounts
   itself at the same destination replaces;
2. `HostConfig.Binds` (`-v SRC:DST[:MODE]`, `-v DST`), then `HostConfig.Mounts`
   (`--mount`), then `HostConfig.Tmpfs` (`--tmpfs`): two of these at one destination
   are refused (`Duplicate mount point: /x`);
3. `Config.Volumes` (the docker CLI sends `-v /path` there) and the image's `VOLUME`s:
   an anonymous volume each, unless something above is mounted there already.

Everything here is pure: a refused request is refused before anything exists.
Checks that need the host (does a `--mount` bind source exist, is a driver known)
are `VolumeService.claim`'s.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine.errors import InvalidParameter
from engine.runtime.ocimounts import merge_tmpfs_options
from engine.volumes.model import (
    DEFAULT_DRIVER,
    MountPoint,
    MountRequest,
    MountType,
    Origin,
)

VOLUME_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")

RW_MODES = frozenset({"rw", "ro", "ro-non-recursive", "ro-force-recursive", "rro"})
LABEL_MODES = frozenset({"z", "Z"})
PROPAGATIONS = frozenset({"private", "rprivate", "slave", "rslave", "shared", "rshared"})
COPY_MODES = frozenset({"nocopy"})
CONSISTENCY_MODES = frozenset({"consistent", "cached", "delegated", "default"})

# Files below /proc that a container may have bind-mounted over its own (what LXCFS
# provides, the same list runc accepts); anything else under /proc is refused.
PROC_FILES_ALLOWED = frozenset({
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
})


class SpecError(ValueError):
    """A mount spec is invalid; the message is Docker's, without the `-v` wrapper."""


# names ---------------------------------------------------------------------------------


#: A volume's name names its directory and its record file (`<name>.json`, written via
#: `.<name>.json.XXXXXXXX.tmp`): 255 bytes for that temporary name leave 236.
MAX_VOLUME_NAME_BYTES = 236


def validate_volume_name(name: str) -> None:
    """Docker's rule for volume names, with its message (`create NAME: …`); and a length
    limit of ours, where dockerd fails with a 500 naming its directory."""
    if len(name.encode()) > MAX_VOLUME_NAME_BYTES:
        raise InvalidParameter(f"create {name}: volume name is too long, names can be at "
                               f"most {MAX_VOLUME_NAME_BYTES} bytes")
    if len(name) == 1 and name.isalnum():
        raise InvalidParameter(
            f"create {name}: volume name is too short, names should be at least two "
            "alphanumeric characters")
    if not _VOLUME_NAME.fullmatch(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            f'only "{VOLUME_NAME_CHARS}" are allowed. If you intended to pass a host '
            "directory, use absolute path")


# paths ---------------------------------------------------------------------------------


def clean_path(path: str) -> str:
    """Go's `path.Clean` for an absolute path: `/a//b/../c/` → `/a/c`."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("/") else cleaned


def _check_absolute(path: str) -> None:
    if not path.startswith("/"):
        raise SpecError(f"invalid mount path: '{path}' mount path must be absolute")


def check_destination(target: str) -> str:
    """The cleaned destination, or the reason it cannot be one."""
    if not target:
        raise SpecError("field Target must not be empty")
    _check_absolute(target)
    cleaned = clean_path(target)
    if cleaned == "/":
        raise SpecError("invalid specification: destination can't be '/'")
    if cleaned in ("/proc", "/sys") or (cleaned.startswith("/proc/")
                                        and cleaned not in PROC_FILES_ALLOWED):
        raise SpecError(
            f"invalid mount destination '{cleaned}': mounting over the container's /proc "
            "or /sys is not allowed")
    return cleaned


def _config_error(kind: str, message: str) -> str:
    return f'invalid mount config for type "{kind}": {message}'


# modes ---------------------------------------------------------------------------------


def _mode_words(mode: str) -> list[str] | None:
    """The words of a `-v` mode, or None if Docker would refuse it."""
    if mode == "":
        return []
    words = mode.split(",")
    counts = [0, 0, 0, 0, 0]
    for word in words:
        for i, group in enumerate((RW_MODES, LABEL_MODES, PROPAGATIONS, COPY_MODES,
                                   CONSISTENCY_MODES)):
            if word in group:
                counts[i] += 1
                break
        else:
            return None
    return words if all(c <= 1 for c in counts) else None


def valid_mode(mode: str) -> bool:
    return _mode_words(mode) is not None


def _read_only(words: Iterable[str]) -> bool:
    return any(w in RW_MODES and w != "rw" for w in words)


# -v ------------------------------------------------------------------------------------


def parse_bind(raw: str, volume_driver: str = "") -> MountRequest:
    """One `-v` / `HostConfig.Binds` entry: `SRC:DST[:MODE]` or `DST` (anonymous)."""
    parts = raw.split(":", 3)
    if parts[0] == "":
        raise InvalidParameter(f"invalid volume specification: '{raw}'")
    source, target, mode = "", "", ""
    if len(parts) == 1:
        target = parts[0]
    elif len(parts) == 2:
        if valid_mode(parts[1]):  # `/foo:rw` has no source: a mode alone is not a volume
            raise InvalidParameter(f"invalid volume specification: '{raw}'")
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise InvalidParameter(f"invalid volume specification: '{raw}'")
    words = _mode_words(mode)
    if words is None:
        raise InvalidParameter(f"invalid mode: {mode}")
    kind = MountType.BIND if source.startswith("/") else MountType.VOLUME
    propagation = next((w for w in words if w in PROPAGATIONS), "")
    nocopy = "nocopy" in words
    try:
        destination = check_destination(target)
        if kind is MountType.VOLUME and propagation:
            raise SpecError("field BindOptions must not be specified")
        if kind is MountType.BIND and nocopy:
            raise SpecError("field VolumeOptions must not be specified")
    except SpecError as exc:
        raise InvalidParameter(
            f"invalid volume specification: '{raw}': {_config_error(kind.value, str(exc))}"
        ) from None
    if kind is MountType.VOLUME and source:
        validate_volume_name(source)
    return MountRequest(
        type=kind,
        target=destination,
        source=clean_path(source) if kind is MountType.BIND else source,
        read_only=_read_only(words),
        propagation=propagation,
        relabel=next((w for w in words if w in LABEL_MODES), ""),
        nocopy=nocopy,
        driver=volume_driver if kind is MountType.VOLUME else "",
        create_source=kind is MountType.BIND,
        mode=mode,
        origin=Origin.BINDS,
    )


# --mount -------------------------------------------------------------------------------


def _get(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str,
         what: str) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidParameter(f"invalid type for {where}{key}: expected {what}")
    return value


def _string_map(obj: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    value = _get(obj, key, dict, where, "an object of strings") or {}
    if not all(isinstance(v, str) for v in value.values()):
        raise InvalidParameter(f"invalid type for {where}{key}: expected an object of strings")
    return dict(value)


def tmpfs_size_text(size: int) -> str:
    """Docker's rendering of `SizeBytes`: the largest of g/m/k that divides it evenly."""
    for suffix, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % divisor == 0:
            return f"{size // divisor}{suffix}"
    return str(size)


def _tmpfs_data(options: Mapping[str, Any] | None, read_only: bool, where: str) -> str:
    words = ["ro"] if read_only else []
    if options:
        mode = _get(options, "Mode", int, where, "an integer")
        if mode:
            words.append(f"mode={mode & 0o7777:o}")
        size = _get(options, "SizeBytes", int, where, "an integer")
        if size:
            if size < 0:
                raise SpecError("invalid tmpfs size: must not be negative")
            words.append(f"size={tmpfs_size_text(size)}")
        extra = _get(options, "Options", list, where, "a list of [name, value] lists") or []
        for option in extra:
            if not isinstance(option, list) or not 1 <= len(option) <= 2 \
                    or not all(isinstance(o, str) for o in option):
                raise SpecError("invalid option array length")
            if option[0] not in ("exec", "noexec"):
                raise SpecError(f"invalid option: {option[0]}")
            words.append("=".join(option))
    return ",".join(words)


def parse_mount(obj: Any, index: int = 0) -> MountRequest:
    """One `HostConfig.Mounts` entry, as the docker CLI sends `--mount`."""
    where = f"HostConfig.Mounts[{index}]."
    if not isinstance(obj, dict):
        raise InvalidParameter(f"invalid type for HostConfig.Mounts[{index}]: expected an object")
    kind_text = _get(obj, "Type", str, where, "a string") or ""
    target = _get(obj, "Target", str, where, "a string") or ""
    source = _get(obj, "Source", str, where, "a string") or ""
    read_only = bool(_get(obj, "ReadOnly", bool, where, "a boolean"))
    bind = _get(obj, "BindOptions", dict, where, "an object")
    volume = _get(obj, "VolumeOptions", dict, where, "an object")
    tmpfs = _get(obj, "TmpfsOptions", dict, where, "an object")
    try:
        kind = MountType(kind_text)
    except ValueError:
        if kind_text in ("npipe", "cluster", "image"):
            raise InvalidParameter(_config_error(
                kind_text, f"{kind_text} mounts are not supported by moorage")) from None
        raise InvalidParameter(_config_error(kind_text, "mount type unknown")) from None
    try:
        return _mount_request(kind, target, source, read_only, bind, volume, tmpfs, where)
    except SpecError as exc:
        raise InvalidParameter(_config_error(kind.value, str(exc))) from None


def _mount_request(kind: MountType, target: str, source: str, read_only: bool,
                   bind: dict[str, Any] | None, volume: dict[str, Any] | None,
                   tmpfs: dict[str, Any] | None, where: str) -> MountRequest:
    destination = check_destination(target)
    if kind is MountType.BIND:
        if not source:
            raise SpecError("field Source must not be empty")
        if volume is not None:
            raise SpecError("field VolumeOptions must not be specified")
        w = where + "BindOptions."
        options = bind or {}
        propagation = _get(options, "Propagation", str, w, "a string") or ""
        if propagation and propagation not in PROPAGATIONS:
            raise SpecError(f"invalid propagation mode: {propagation}")
        _check_absolute(source)
        return MountRequest(
            type=kind, target=destination, source=clean_path(source), read_only=read_only,
            propagation=propagation,
            create_source=bool(_get(options, "CreateMountpoint", bool, w, "a boolean")),
            recursive=not _get(options, "NonRecursive", bool, w, "a boolean"),
            origin=Origin.MOUNTS)
    if kind is MountType.VOLUME:
        if bind is not None:
            raise SpecError("field BindOptions must not be specified")
        w = where + "VolumeOptions."
        options = volume or {}
        driver_config = _get(options, "DriverConfig", dict, w, "an object") or {}
        subpath = _get(options, "Subpath", str, w, "a string") or ""
        if subpath:
            if not source:
                raise SpecError("must not set Subpath when using anonymous volumes")
            if subpath.startswith("/") or ".." in subpath.split("/"):
                raise SpecError("subpath must be a relative path within the volume")
        if read_only and not source:
            raise SpecError("must not set ReadOnly mode when using anonymous volumes")
        if source:
            validate_volume_name(source)
        return MountRequest(
            type=kind, target=destination, source=source, read_only=read_only,
            nocopy=bool(_get(options, "NoCopy", bool, w, "a boolean")),
            driver=_get(driver_config, "Name", str, w + "DriverConfig.", "a string") or "",
            driver_options=_string_map(driver_config, "Options", w + "DriverConfig."),
            labels=_string_map(options, "Labels", w), subpath=subpath, origin=Origin.MOUNTS)
    if bind is not None:
        raise SpecError("field BindOptions must not be specified")
    if source:
        raise SpecError("field Source must not be specified")
    data = _tmpfs_data(tmpfs, read_only, where + "TmpfsOptions.")
    return MountRequest(type=kind, target=destination, read_only=read_only,
                        tmpfs_data=_checked_tmpfs_data(data), origin=Origin.MOUNTS)


def _checked_tmpfs_data(data: str) -> str:
    # the same merge the spec builder does; here so a bad option is a 400 at create
    merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate", *(w for w in data.split(",") if w)])
    return data


# --tmpfs, Config.Volumes, VOLUME -------------------------------------------------------


def parse_tmpfs(target: str, data: str) -> MountRequest:
    """One `--tmpfs DST[:OPTIONS]` (`HostConfig.Tmpfs`); Docker leaves it out of `Mounts`."""
    try:
        destination = check_destination(target)
    except SpecError as exc:
        raise InvalidParameter(_config_error("tmpfs", str(exc))) from None
    words = [w for w in data.split(",") if w]
    return MountRequest(type=MountType.TMPFS, target=destination, read_only="ro" in words,
                        tmpfs_data=_checked_tmpfs_data(data), origin=Origin.TMPFS, listed=False)


def parse_anonymous(target: str, origin: Origin = Origin.VOLUMES,
                    volume_driver: str = "") -> MountRequest:
    """An anonymous volume at `target` (`Config.Volumes` or the image's `VOLUME`)."""
    try:
        destination = check_destination(target)
    except SpecError as exc:
        raise InvalidParameter(_config_error("volume", str(exc))) from None
    return MountRequest(type=MountType.VOLUME, target=destination, driver=volume_driver,
                        origin=origin)


# --volumes-from ------------------------------------------------------------------------


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """`CONTAINER[:MODE]` → (container, mode); MODE is rw (default) or ro, maybe with z/Z."""
    if not spec:
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    container, _, mode = spec.partition(":")
    if not mode:
        return container, "rw"
    words = _mode_words(mode)
    if words is None or any(w in PROPAGATIONS or w in COPY_MODES for w in words):
        raise InvalidParameter(f"invalid mode: {mode}")
    return container, mode


def volumes_from(mount_points: Sequence[MountPoint], mode: str = "rw") -> list[MountRequest]:
    """Another container's mounts as requests for a new one (`--volumes-from C[:ro]`).

    The same volumes and host paths, read-only if `mode` says so (or if they already
    were); never a copy of image content. `--tmpfs` mounts are not shared (Docker
    doesn't share them either); a `--mount type=tmpfs` gives the new container a tmpfs
    of its own with the same options.
    """
    words = _mode_words(mode) or []
    ro = _read_only(words)
    requests = []
    for mp in mount_points:
        if not mp.listed:
            continue
        read_only = ro or not mp.rw
        if mp.type == MountType.BIND.value:
            requests.append(MountRequest(
                type=MountType.BIND, target=mp.destination, source=mp.source,
                read_only=read_only, propagation=mp.propagation, create_source=mp.create_source,
                recursive=mp.recursive, origin=Origin.VOLUMES_FROM))
        elif mp.type == MountType.VOLUME.value:
            requests.append(MountRequest(
                type=MountType.VOLUME, target=mp.destination, source=mp.name,
                read_only=read_only, nocopy=True, driver=mp.driver, subpath=mp.subpath,
                origin=Origin.VOLUMES_FROM))
        elif mp.type == MountType.TMPFS.value:
            data = ",".join(w for w in mp.tmpfs_data.split(",") if w and w not in ("ro", "rw"))
            if read_only:
                data = ",".join(w for w in ("ro", data) if w)
            requests.append(MountRequest(
                type=MountType.TMPFS, target=mp.destination, read_only=read_only,
                tmpfs_data=data, origin=Origin.VOLUMES_FROM))
    return requests


# all of it -----------------------------------------------------------------------------


def parse_mount_requests(*, binds: Sequence[str] = (), mounts: Sequence[Any] = (),
                         anonymous: Iterable[str] = (), tmpfs: Mapping[str, str] | None = None,
                         image_volumes: Iterable[str] = (),
                         inherited: Sequence[MountRequest] = (),
                         volume_driver: str = "") -> list[MountRequest]:
    """Every mount a new container gets, in Docker's precedence (see the module docstring).

    `binds` is `HostConfig.Binds`, `mounts` the raw `HostConfig.Mounts` JSON list,
    `anonymous` the keys of the request's `Config.Volumes`, `tmpfs` `HostConfig.Tmpfs`,
    `image_volumes` the image config's `Volumes`, `inherited` what `volumes_from` gave
    for each `--volumes-from`, `volume_driver` `HostConfig.VolumeDriver`. Raises
    `InvalidParameter` with Docker's message for the first thing wrong.
    """
    own: dict[str, MountRequest] = {}

    def add(request: MountRequest) -> None:
        if request.target in own:
            raise InvalidParameter(f"Duplicate mount point: {request.target}")
        own[request.target] = request

    for raw in binds:
        add(parse_bind(raw, volume_driver))
    for index, obj in enumerate(mounts):
        add(parse_mount(obj, index))
    for target, data in (tmpfs or {}).items():
        add(parse_tmpfs(target, data))
    result: dict[str, MountRequest] = {r.target: r for r in inherited}
    result.update(own)
    for origin, targets in ((Origin.VOLUMES, anonymous), (Origin.IMAGE, image_volumes)):
        for target in targets:
            request = parse_anonymous(target, origin, volume_driver)
            result.setdefault(request.target, request)
    return list(result.values())


def effective_driver(request: MountRequest) -> str:
    return request.driver or DEFAULT_DRIVER


__all__ = [
    "MAX_VOLUME_NAME_BYTES",
    "PROPAGATIONS",
    "SpecError",
    "check_destination",
    "clean_path",
    "effective_driver",
    "parse_anonymous",
    "parse_bind",
    "parse_mount",
    "parse_mount_requests",
    "parse_tmpfs",
    "parse_volumes_from",
    "valid_mode",
    "validate_volume_name",
    "volumes_from",
]
