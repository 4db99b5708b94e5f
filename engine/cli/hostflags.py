"""The isolation, logging and namespace flags of `moor run/create`: --privileged,
--cap-add/--cap-drop, --security-opt, --log-driver/--log-opt, --sysctl, --group-add,
--ipc/--pid/--uts/--cgroupns, --oom-score-adj, --runtime, --annotation, --expose,
--device, --device-cgroup-rule —
parsed as the docker CLI parses them and written where it writes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import click

from engine.cli.options import OptionError, key_value_map
from engine.errors import InvalidParameter
from engine.runtime.devices import parse_cgroup_rule, valid_permissions

#: what docker says of a --log-opt, --sysctl or --annotation without `=`
_KV_FORMAT = "invalid key value pair format: {value}"


def click_options() -> list[Any]:
    """The flags, as click decorators (added to run and create)."""
    def many(*names: str, help: str) -> Any:
        return click.option(*names, multiple=True, metavar="LIST", help=help)

    return [
        many("--annotation", "annotations", help="Add an annotation to the container (k=v)"),
        many("--cap-add", "cap_add", help="Add Linux capabilities"),
        many("--cap-drop", "cap_drop", help="Drop Linux capabilities"),
        click.option("--cgroupns", default="", metavar="STRING",
                     help="Cgroup namespace to use (host|private)"),
        many("--device", "devices", help="Add a host device to the container"),
        many("--device-cgroup-rule", "device_cgroup_rules",
             help="Add a rule to the cgroup allowed devices list"),
        many("--expose", "expose", help="Expose a port or a range of ports"),
        many("--group-add", "group_add", help="Add additional groups to join"),
        click.option("--ipc", default="", metavar="STRING", help="IPC mode to use"),
        click.option("--log-driver", default="", metavar="STRING",
                     help="Logging driver for the container"),
        many("--log-opt", "log_opts", help="Log driver options"),
        click.option("--oom-score-adj", type=int, default=0, metavar="INT",
                     help="Tune host's OOM preferences (-1000 to 1000)"),
        click.option("--pid", default="", metavar="STRING", help="PID namespace to use"),
        click.option("--privileged", is_flag=True,
                     help="Give extended privileges to this container"),
        click.option("--runtime", default="", metavar="STRING",
                     help="Runtime to use for this container"),
        many("--security-opt", "security_opt", help="Security Options"),
        many("--sysctl", "sysctls", help="Sysctl options (k=v)"),
        click.option("--uts", default="", metavar="STRING", help="UTS namespace to use"),
    ]


@attrs.frozen
class HostFlags:
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    log_driver: str = ""
    log_opts: dict[str, str] = attrs.field(factory=dict)
    sysctls: dict[str, str] = attrs.field(factory=dict)
    group_add: tuple[str, ...] = ()
    ipc: str = ""
    pid: str = ""
    uts: str = ""
    cgroupns: str = ""
    oom_score_adj: int = 0
    runtime: str = ""
    annotations: dict[str, str] = attrs.field(factory=dict)
    exposed: tuple[str, ...] = ()  # "80/tcp", ...
    devices: tuple[dict[str, str], ...] = ()  # HostConfig.Devices entries
    device_cgroup_rules: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> HostFlags:
        """From click's parameters (absent keys mean unset); values checked like docker's."""
        score = params.get("oom_score_adj") or 0
        if not -1000 <= score <= 1000:
            raise OptionError(f"invalid value {score}: range for oom score adj is [-1000, 1000]")
        if params.get("log_opts") and params.get("log_driver") == "none":
            raise OptionError("invalid logging opts for driver none")
        return cls(
            privileged=bool(params.get("privileged")),
            cap_add=tuple(params.get("cap_add") or ()),
            cap_drop=tuple(params.get("cap_drop") or ()),
            security_opt=tuple(params.get("security_opt") or ()),
            log_driver=params.get("log_driver") or "",
            log_opts=key_value_map(params.get("log_opts") or (), "--log-opt",
                                   _KV_FORMAT),
            sysctls=key_value_map(params.get("sysctls") or (), "--sysctl",
                                   _KV_FORMAT),
            group_add=tuple(params.get("group_add") or ()),
            ipc=params.get("ipc") or "",
            pid=params.get("pid") or "",
            uts=params.get("uts") or "",
            cgroupns=params.get("cgroupns") or "",
            oom_score_adj=score,
            runtime=params.get("runtime") or "",
            annotations=key_value_map(params.get("annotations") or (), "--annotation",
                                   _KV_FORMAT),
            exposed=tuple(p for spec in params.get("expose") or () for p in exposed_ports(spec)),
            devices=tuple(device_mapping(d) for d in params.get("devices") or ()),
            device_cgroup_rules=tuple(_cgroup_rule(r)
                                      for r in params.get("device_cgroup_rules") or ()),
        )

    def apply(self, body: dict[str, Any]) -> None:
        """Write the flags into a create body (its `HostConfig` must exist)."""
        host = body["HostConfig"]
        for key, value in (("Privileged", self.privileged), ("CapAdd", list(self.cap_add)),
                           ("CapDrop", list(self.cap_drop)),
                           ("SecurityOpt", list(self.security_opt)),
                           ("Sysctls", self.sysctls), ("GroupAdd", list(self.group_add)),
                           ("IpcMode", self.ipc), ("PidMode", self.pid), ("UTSMode", self.uts),
                           ("CgroupnsMode", self.cgroupns), ("OomScoreAdj", self.oom_score_adj),
                           ("Runtime", self.runtime), ("Annotations", self.annotations),
                           ("Devices", list(self.devices)),
                           ("DeviceCgroupRules", list(self.device_cgroup_rules))):
            if value:
                host[key] = value
        if self.log_driver or self.log_opts:
            host["LogConfig"] = {"Type": self.log_driver, "Config": self.log_opts}
        if self.exposed:
            body["ExposedPorts"] = {**(body.get("ExposedPorts") or {}),
                                    **{port: {} for port in self.exposed}}


def exposed_ports(spec: str) -> list[str]:
    """`80`, `80/udp`, `8000-8002/tcp` as `port/proto` keys (docker's --expose)."""
    ports, _, proto = spec.partition("/")
    proto = proto or "tcp"
    low, _, high = ports.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise OptionError(f"invalid range format for --expose: {spec}, error: invalid port "
                          f"{ports}") from None
    if not (0 < first <= last <= 65535) or proto not in ("tcp", "udp", "sctp"):
        raise OptionError(f"invalid range format for --expose: {spec}")
    return [f"{port}/{proto}" for port in range(first, last + 1)]


def device_mapping(spec: str) -> dict[str, str]:
    """`--device HOST[:CONTAINER][:PERMISSIONS]` (`HOST:rw` too), as docker parses it."""
    parts = spec.split(":", 3)
    if len(parts) > 3:
        raise OptionError(f"invalid device specification: {spec}")
    host, inside, permissions = parts[0], "", "rwm"
    if len(parts) == 3:
        inside, permissions = parts[1], parts[2]
    elif len(parts) == 2:
        if valid_permissions(parts[1]):
            permissions = parts[1]
        else:
            inside = parts[1]
    inside = inside or host
    if not inside.startswith("/") or not valid_permissions(permissions):
        raise OptionError(f"invalid argument \"{spec}\" for \"--device\" flag: "
                          f"bad format for path: {spec}")
    return {"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": permissions}


def _cgroup_rule(rule: str) -> str:
    try:
        parse_cgroup_rule(rule)
    except InvalidParameter:
        raise OptionError(f"invalid argument \"{rule}\" for \"--device-cgroup-rule\" flag: "
                          f"invalid device cgroup format '{rule}'") from None
    return rule
