"""Managed plugins as Docker's JSON (`types.Plugin`): `GET /plugins`, `/plugins/{name}/json`."""

from __future__ import annotations

from typing import Any

from engine.managed_plugins.config import PluginDevice, PluginMount
from engine.managed_plugins.store import ManagedPlugin


def _mount(m: PluginMount) -> dict[str, Any]:
    return {"Description": m.description, "Destination": m.destination, "Name": m.name,
            "Options": list(m.options) or None, "Settable": list(m.settable) or None,
            "Source": m.source, "Type": m.type}


def _device(d: PluginDevice) -> dict[str, Any]:
    return {"Description": d.description, "Name": d.name, "Path": d.path,
            "Settable": list(d.settable) or None}


def plugin(p: ManagedPlugin) -> dict[str, Any]:
    """One plugin; empty lists are null where Go would marshal a nil slice."""
    c = p.config
    config: dict[str, Any] = {
        "Args": {"Description": c.args.description, "Name": c.args.name,
                 "Settable": list(c.args.settable) or None, "Value": list(c.args.value) or None},
        "Description": c.description,
        "Documentation": c.documentation,
        "Entrypoint": list(c.entrypoint) or None,
        "Env": [{"Description": e.description, "Name": e.name,
                 "Settable": list(e.settable) or None, "Value": e.value} for e in c.env] or None,
        "Interface": {"Socket": c.interface_socket, "Types": list(c.interface_types) or None},
        "IpcHost": c.ipc_host,
        "Linux": {"AllowAllDevices": c.allow_all_devices,
                  "Capabilities": list(c.capabilities) or None,
                  "Devices": [_device(d) for d in c.devices] or None},
        "Mounts": [_mount(m) for m in c.mounts] or None,
        "Network": {"Type": c.network_type},
        "PidHost": c.pid_host,
        "PropagatedMount": c.propagated_mount,
        "WorkDir": c.workdir,
    }
    if c.protocol_scheme:
        config["Interface"]["ProtocolScheme"] = c.protocol_scheme
    if c.docker_version:
        config["DockerVersion"] = c.docker_version
    user = {k: v for k, v in (("GID", c.user_gid), ("UID", c.user_uid)) if v}
    config["User"] = user
    if c.rootfs_diff_ids:
        config["rootfs"] = {"diff_ids": list(c.rootfs_diff_ids), "type": "layers"}
    s = p.settings
    doc: dict[str, Any] = {
        "Config": config,
        "Enabled": p.enabled,
        "Id": p.id,
        "Name": p.name,
        "Settings": {"Args": list(s.args), "Devices": [_device(d) for d in s.devices],
                     "Env": list(s.env), "Mounts": [_mount(m) for m in s.mounts]},
    }
    if p.reference:
        doc["PluginReference"] = p.reference
    return doc


__all__ = ["plugin"]
