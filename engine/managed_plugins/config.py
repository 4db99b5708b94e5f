"""A managed plugin's `config.json`: what the plugin says it is, read as Go reads it.

The file is Docker's plugin config (the `config.json` beside `rootfs/` that `docker
plugin create` and docker-py's `create_plugin` send). Go's JSON decoder matches keys
without regard to case (the files say `entrypoint`, inspect says `Entrypoint`), so
keys are looked up the same way here. Fields of the wrong type are refused with
`failed to parse config: …`, as dockerd's decoder refuses them; missing ones are empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from engine.errors import InvalidParameter
from engine.jsondoc import load_object

#: A config.json larger than this is not a plugin's
MAX_CONFIG_BYTES = 1024 * 1024


@attrs.frozen
class PluginEnv:
    name: str
    description: str = ""
    settable: tuple[str, ...] = ()
    value: str | None = None


@attrs.frozen
class PluginMount:
    name: str = ""
    description: str = ""
    settable: tuple[str, ...] = ()
    source: str | None = None
    destination: str = ""
    type: str = ""
    options: tuple[str, ...] = ()


@attrs.frozen
class PluginDevice:
    name: str = ""
    description: str = ""
    settable: tuple[str, ...] = ()
    path: str | None = None


@attrs.frozen
class PluginArgs:
    name: str = ""
    description: str = ""
    settable: tuple[str, ...] = ()
    value: tuple[str, ...] = ()


@attrs.frozen
class PluginConfig:
    """What a plugin declares about itself; `interface_types` as `docker.volumedriver/1.0`."""

    description: str = ""
    documentation: str = ""
    entrypoint: tuple[str, ...] = ()
    workdir: str = ""
    interface_types: tuple[str, ...] = ()
    interface_socket: str = ""
    protocol_scheme: str = ""
    network_type: str = ""
    ipc_host: bool = False
    pid_host: bool = False
    propagated_mount: str = ""
    capabilities: tuple[str, ...] = ()
    allow_all_devices: bool = False
    devices: tuple[PluginDevice, ...] = ()
    mounts: tuple[PluginMount, ...] = ()
    env: tuple[PluginEnv, ...] = ()
    args: PluginArgs = attrs.field(factory=PluginArgs)
    user_uid: int = 0
    user_gid: int = 0
    docker_version: str = ""
    rootfs_diff_ids: tuple[str, ...] = ()

    @property
    def capabilities_offered(self) -> tuple[str, ...]:
        """The interface types' capability part (`volumedriver`), as `capability` filters
        and `docker info` name them."""
        return tuple(t.partition("/")[0].rpartition(".")[2] for t in self.interface_types)


# reading, as Go's encoding/json reads -------------------------------------------------


def _field(d: Mapping[str, Any], key: str) -> Any:
    """`d[key]`, the key matched without regard to case (an exact match first)."""
    if key in d:
        return d[key]
    lowered = key.lower()
    for k, v in d.items():
        if k.lower() == lowered:
            return v
    return None


def _bad(where: str, expected: str) -> InvalidParameter:
    return InvalidParameter(f"failed to parse config: {where} must be {expected}")


def _str(d: Mapping[str, Any], key: str, where: str) -> str:
    value = _field(d, key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad(where + key, "a string")
    return value


def _opt_str(d: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if _field(d, key) is None else _str(d, key, where)


def _bool(d: Mapping[str, Any], key: str, where: str) -> bool:
    value = _field(d, key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad(where + key, "a boolean")
    return value


def _uint32(d: Mapping[str, Any], key: str, where: str) -> int:
    value = _field(d, key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise _bad(where + key, "a uint32")
    return value


def _strs(d: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = _field(d, key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(where + key, "a list of strings")
    return tuple(value)


def _obj(d: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = _field(d, key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(where + key, "an object")
    return value


def _objs(d: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = _field(d, key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _bad(where + key, "a list of objects")
    return value


def _env(d: Mapping[str, Any]) -> PluginEnv:
    w = "Env."
    return PluginEnv(_str(d, "Name", w), _str(d, "Description", w), _strs(d, "Settable", w),
                     _opt_str(d, "Value", w))


def _mount(d: Mapping[str, Any]) -> PluginMount:
    w = "Mounts."
    return PluginMount(_str(d, "Name", w), _str(d, "Description", w), _strs(d, "Settable", w),
                       _opt_str(d, "Source", w), _str(d, "Destination", w), _str(d, "Type", w),
                       _strs(d, "Options", w))


def _device(d: Mapping[str, Any]) -> PluginDevice:
    w = "Linux.Devices."
    return PluginDevice(_str(d, "Name", w), _str(d, "Description", w), _strs(d, "Settable", w),
                        _opt_str(d, "Path", w))


def parse_config(data: bytes) -> PluginConfig:
    """Read a plugin's config.json; `InvalidParameter` in dockerd's words if it is not one."""
    doc = load_object(data, "failed to parse config")
    interface = _obj(doc, "Interface", "")
    linux = _obj(doc, "Linux", "")
    args = _obj(doc, "Args", "")
    user = _obj(doc, "User", "")
    rootfs = _obj(doc, "rootfs", "")
    return PluginConfig(
        description=_str(doc, "Description", ""),
        documentation=_str(doc, "Documentation", ""),
        entrypoint=_strs(doc, "Entrypoint", ""),
        workdir=_str(doc, "WorkDir", ""),
        interface_types=_strs(interface, "Types", "Interface."),
        interface_socket=_str(interface, "Socket", "Interface."),
        protocol_scheme=_str(interface, "ProtocolScheme", "Interface."),
        network_type=_str(_obj(doc, "Network", ""), "Type", "Network."),
        ipc_host=_bool(doc, "IpcHost", ""),
        pid_host=_bool(doc, "PidHost", ""),
        propagated_mount=_str(doc, "PropagatedMount", ""),
        capabilities=_strs(linux, "Capabilities", "Linux."),
        allow_all_devices=_bool(linux, "AllowAllDevices", "Linux."),
        devices=tuple(_device(x) for x in _objs(linux, "Devices", "Linux.")),
        mounts=tuple(_mount(x) for x in _objs(doc, "Mounts", "")),
        env=tuple(_env(x) for x in _objs(doc, "Env", "")),
        args=PluginArgs(_str(args, "Name", "Args."), _str(args, "Description", "Args."),
                        _strs(args, "Settable", "Args."), _strs(args, "Value", "Args.")),
        user_uid=_uint32(user, "UID", "User."),
        user_gid=_uint32(user, "GID", "User."),
        docker_version=_str(doc, "DockerVersion", ""),
        rootfs_diff_ids=_strs(rootfs, "diff_ids", "rootfs."),
    )


__all__ = [
    "MAX_CONFIG_BYTES", "PluginArgs", "PluginConfig", "PluginDevice", "PluginEnv",
    "PluginMount", "parse_config",
]
