"""Docker's container JSON (create body, inspect, list) <-> container records.

Reading is strict about types (a wrong type is a 400 that names the field) and
honest about what isn't built yet: options that would silently do nothing are refused
with a clear message rather than ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.alerts.labels import check_labels as check_alert_labels
from engine.api.wire import fields
from engine.api.wire import networks as _net
from engine.api.wire.volumes import mounts_json
from engine.containers.model import (
    Container,
    ContainerSpec,
    DeviceMapping,
    HealthState,
    HostSpec,
    LogConfig,
    PortBinding,
    RestartPolicy,
    Status,
    Ulimit,
)
from engine.containers.resources import ResourceUpdate
from engine.containers.status import status_text
from engine.errors import EngineError, InvalidParameter
from engine.images.model import Healthcheck, Image
from engine.images.ociconfig import format_time as rfc3339
from engine.limits import HOST_NUMBERS, LIMITS, MAX_RETRY_COUNT, STOP_TIMEOUT, UINT, Limit
from engine.runtime.devices import parse_cgroup_rule, valid_permissions
from engine.volumes.parse import parse_mount_requests, parse_volumes_from

ZERO_TIME = "0001-01-01T00:00:00Z"


# reading ------------------------------------------------------------------------


def _healthcheck(d: dict[str, Any]) -> Healthcheck | None:
    hc = d.get("Healthcheck")
    if hc is None:
        return None
    if not isinstance(hc, dict):
        raise InvalidParameter("invalid type for Healthcheck: expected an object")
    w = "Healthcheck."
    return Healthcheck(
        test=tuple(fields.string_list(hc, "Test", w)),
        interval=fields.integer(hc, "Interval", w),
        timeout=fields.integer(hc, "Timeout", w),
        start_period=fields.integer(hc, "StartPeriod", w),
        start_interval=fields.integer(hc, "StartInterval", w),
        retries=fields.integer(hc, "Retries", w),
    )


HEALTH_ON_FAILURE_LABEL = "moorage.health-on-failure"
HEALTH_ACTIONS = ("none", "kill", "restart", "stop")


def _health_on_failure(body: dict[str, Any]) -> str:
    """What an unhealthy container gets: `Healthcheck.OnFailure` (moor) or a label (docker CLI)."""
    hc = body.get("Healthcheck")
    action = hc.get("OnFailure") if isinstance(hc, dict) else None
    labels = body.get("Labels")
    if not action and isinstance(labels, dict):
        action = labels.get(HEALTH_ON_FAILURE_LABEL)
    action = action or "none"
    if action not in HEALTH_ACTIONS:
        raise InvalidParameter(
            f"invalid health-on-failure action {action!r}: one of {', '.join(HEALTH_ACTIONS)}")
    return str(action)


# alerts (engine/alerts): `moorage.notify-url`, `moorage.notify-on` --------------------


def _check_alert_labels(body: dict[str, Any]) -> None:
    """A webhook that could never be called, or an unknown kind, is a 400 at create."""
    labels = body.get("Labels")
    if isinstance(labels, dict):
        try:
            check_alert_labels({k: v for k, v in labels.items() if isinstance(v, str)})
        except ValueError as exc:
            raise InvalidParameter(str(exc)) from None


# ---------------------------------------------------------------------------------


def _port_bindings(d: dict[str, Any]) -> dict[str, list[PortBinding]]:
    raw = fields.json_object(d, "PortBindings", "HostConfig.")
    result: dict[str, list[PortBinding]] = {}
    for port, bindings in raw.items():
        if bindings is None:
            result[port] = []
            continue
        if not isinstance(bindings, list):
            raise InvalidParameter("invalid type for HostConfig.PortBindings: expected lists")
        result[port] = [
            PortBinding(fields.string(b, "HostIp"), fields.string(b, "HostPort"))
            for b in bindings if isinstance(b, dict)
        ]
    return result


def _ulimits(d: dict[str, Any]) -> list[Ulimit]:
    raw = d.get("Ulimits") or []
    if not isinstance(raw, list):
        raise InvalidParameter("invalid type for HostConfig.Ulimits: expected a list")
    out = []
    for u in raw:
        if not isinstance(u, dict):
            raise InvalidParameter("invalid type for HostConfig.Ulimits: expected objects")
        w = "HostConfig.Ulimits."
        out.append(Ulimit(fields.string(u, "Name", w), fields.integer(u, "Soft", w),
                          fields.integer(u, "Hard", w)))
    return out


def _limit(d: dict[str, Any], limit: Limit, key: str, where: str = "") -> Any:
    """One resource limit under `key`, typed as its field is (see `engine.limits`)."""
    if isinstance(limit.default, bool):
        return fields.boolean(d, key, where)
    if isinstance(limit.default, str):
        return fields.string(d, key, where)
    if limit.default is None:
        return fields.optional_integer(d, key, where, go_type=limit.go_type)
    return fields.integer(d, key, where, go_type=limit.go_type)


def _devices(hc: dict[str, Any]) -> list[DeviceMapping]:
    """`HostConfig.Devices`; the nodes themselves are looked up at each start."""
    raw = hc.get("Devices") or []
    if not isinstance(raw, list) or not all(isinstance(d, dict) for d in raw):
        raise InvalidParameter("invalid type for HostConfig.Devices: expected a list of objects")
    out = []
    for d in raw:
        w = "HostConfig.Devices."
        host = fields.string(d, "PathOnHost", w)
        inside = fields.string(d, "PathInContainer", w) or host
        permissions = fields.string(d, "CgroupPermissions", w) or "rwm"
        if not host:
            raise InvalidParameter("invalid device mapping: PathOnHost cannot be empty")
        if not inside.startswith("/"):
            raise InvalidParameter(f"bad format for path: {inside}")
        if not valid_permissions(permissions):
            raise InvalidParameter(f"invalid device mode: {permissions}")
        out.append(DeviceMapping(host, inside, permissions))
    return out


def _cgroup_rules(rules: list[str]) -> list[str]:
    for rule in rules:
        parse_cgroup_rule(rule)  # a bad one fails the create, not a later start
    return rules


def _isolation(value: str) -> str:
    """Linux has one isolation: "default" (or "", unspecified), any case, as dockerd."""
    if value.lower() not in ("", "default"):
        raise InvalidParameter(f"invalid isolation '{value}' on linux")
    return value


def discarded_warnings(body: dict[str, Any]) -> list[str]:
    """dockerd's warnings for create fields Linux has no use for (they are dropped)."""
    hc = body.get("HostConfig")
    if isinstance(hc, dict) and isinstance(hc.get("CpuPercent"), int) and hc["CpuPercent"] > 0:
        return ["linux does not support CPU percent. Percent discarded."]
    return []


def parse_create(body: dict[str, Any]) -> tuple[ContainerSpec, HostSpec]:
    """A `POST /containers/create` body as records (image defaults not merged yet)."""
    image = fields.string(body, "Image")
    if not image:
        raise InvalidParameter("config cannot be empty in order to create a container")
    hc = fields.json_object(body, "HostConfig")
    w = "HostConfig."
    raw_mounts = hc.get("Mounts") or []
    if not isinstance(raw_mounts, list):
        raise InvalidParameter("invalid type for HostConfig.Mounts: expected a list")
    # refuse bad mounts before anything is created (image volumes are checked at create)
    parse_mount_requests(binds=fields.string_list(hc, "Binds", w), mounts=raw_mounts,
                         anonymous=fields.key_set(body, "Volumes"), tmpfs=fields.string_map(hc, "Tmpfs", w),
                         volume_driver=fields.string(hc, "VolumeDriver", w))
    for source in fields.string_list(hc, "VolumesFrom", w):
        parse_volumes_from(source)
    for key, number in HOST_NUMBERS.items():  # Go's types and dockerd's ranges
        fields.checked_number(hc, key, number, w)
    bindings = _port_bindings(hc)
    _check_alert_labels(body)
    spec = ContainerSpec(
        image=image,
        cmd=fields.string_slice(body, "Cmd"),
        entrypoint=fields.string_slice(body, "Entrypoint"),
        env=fields.string_list(body, "Env"),
        working_dir=fields.string(body, "WorkingDir"),
        user=fields.string(body, "User"),
        labels=fields.string_map(body, "Labels"),
        hostname=fields.string(body, "Hostname"),
        domainname=fields.string(body, "Domainname"),
        tty=fields.boolean(body, "Tty"),
        open_stdin=fields.boolean(body, "OpenStdin"),
        stdin_once=fields.boolean(body, "StdinOnce"),
        attach_stdin=fields.boolean(body, "AttachStdin"),
        attach_stdout=fields.boolean(body, "AttachStdout"),
        attach_stderr=fields.boolean(body, "AttachStderr"),
        stop_signal=fields.string(body, "StopSignal"),
        stop_timeout=fields.checked_number(body, "StopTimeout", STOP_TIMEOUT),
        exposed_ports=sorted(fields.key_set(body, "ExposedPorts")),
        volumes=sorted(fields.key_set(body, "Volumes")),
        healthcheck=_healthcheck(body),
        health_on_failure=_health_on_failure(body),
        network_disabled=fields.boolean(body, "NetworkDisabled"),
        on_build=fields.string_list(body, "OnBuild"),
        shell=fields.string_slice(body, "Shell"),
        args_escaped=fields.boolean(body, "ArgsEscaped"),
    )
    policy = fields.json_object(hc, "RestartPolicy", w)
    log_config = fields.json_object(hc, "LogConfig", w)
    log_type = fields.string(log_config, "Type", "HostConfig.LogConfig.")
    console = hc.get("ConsoleSize") or [0, 0]
    if not (isinstance(console, list) and len(console) == 2 and all(isinstance(x, int) for x in console)):
        raise InvalidParameter("invalid type for HostConfig.ConsoleSize: expected [height, width]")
    for side in console:  # Go's [2]uint
        fields.fitting(side, UINT, "HostConfig.ConsoleSize")
    network_mode = fields.string(hc, "NetworkMode", w) or "default"
    init = hc.get("Init")
    if init is not None and not isinstance(init, bool):
        raise InvalidParameter("invalid type for HostConfig.Init: expected a boolean")
    host = HostSpec(
        network_mode=network_mode,
        auto_remove=fields.boolean(hc, "AutoRemove", w),
        restart_policy=RestartPolicy(
            fields.string(policy, "Name", "HostConfig.RestartPolicy.") or "no",
            fields.integer(policy, "MaximumRetryCount", "HostConfig.RestartPolicy.",
                           go_type=MAX_RETRY_COUNT.go_type),
        ),
        init=init,
        # docker-py's create_container(runtime=…) sends it beside HostConfig
        runtime=fields.string(hc, "Runtime", w) or fields.string(body, "Runtime"),
        privileged=fields.boolean(hc, "Privileged", w),
        cap_add=fields.string_list(hc, "CapAdd", w),
        cap_drop=fields.string_list(hc, "CapDrop", w),
        readonly_rootfs=fields.boolean(hc, "ReadonlyRootfs", w),
        binds=fields.string_list(hc, "Binds", w),
        mounts=list(raw_mounts),
        volumes_from=fields.string_list(hc, "VolumesFrom", w),
        volume_driver=fields.string(hc, "VolumeDriver", w),
        log_config=LogConfig(log_type, fields.string_map(log_config, "Config")),
        port_bindings=bindings,
        publish_all_ports=fields.boolean(hc, "PublishAllPorts", w),
        dns=fields.string_list(hc, "Dns", w),
        dns_search=fields.string_list(hc, "DnsSearch", w),
        dns_options=fields.string_list(hc, "DnsOptions", w),
        extra_hosts=fields.string_list(hc, "ExtraHosts", w),
        links=fields.string_list(hc, "Links", w),
        ulimits=_ulimits(hc),
        shm_size=fields.integer(hc, "ShmSize", w) or 64 * 1024 * 1024,
        **{limit.name: _limit(hc, limit, limit.key, w) for limit in LIMITS},
        oom_score_adj=fields.integer(hc, "OomScoreAdj", w),
        security_opt=fields.string_list(hc, "SecurityOpt", w),
        sysctls=fields.string_map(hc, "Sysctls", w),
        tmpfs=fields.string_map(hc, "Tmpfs", w),
        group_add=fields.string_list(hc, "GroupAdd", w),
        console_size=(console[0], console[1]),
        ipc_mode=fields.string(hc, "IpcMode", w) or "private",
        pid_mode=fields.string(hc, "PidMode", w),
        uts_mode=fields.string(hc, "UTSMode", w),
        cgroupns_mode=fields.string(hc, "CgroupnsMode", w),
        annotations=fields.string_map(hc, "Annotations", w),
        isolation=_isolation(fields.string(hc, "Isolation", w)),
        devices=_devices(hc),
        device_cgroup_rules=_cgroup_rules(fields.string_list(hc, "DeviceCgroupRules", w)),
    )
    if host.memory and not host.memory_swap:
        host.memory_swap = 2 * host.memory
    return spec, host


# writing ------------------------------------------------------------------------


def _healthcheck_json(hc: Healthcheck | None, on_failure: str = "none") -> dict[str, Any] | None:
    if hc is None:
        return None
    out: dict[str, Any] = {"Test": list(hc.test)}
    if on_failure != "none":
        out["OnFailure"] = on_failure
    for key, value in (("Interval", hc.interval), ("Timeout", hc.timeout),
                       ("StartPeriod", hc.start_period), ("StartInterval", hc.start_interval),
                       ("Retries", hc.retries)):
        if value:
            out[key] = value
    return out


def _desired_mac(c: Container) -> str:
    """The MAC asked for the main network's endpoint (Docker 28 still shows it as the
    deprecated `Config.MacAddress`, for clients of API < 1.44)."""
    net = c.networking
    if net is None or not net.networks or net.mode in ("host", "none") or net.shared_with:
        return ""
    return next(iter(net.networks.values())).mac_address


def config_json(c: Container) -> dict[str, Any]:
    s = c.spec
    mac = _desired_mac(c)
    return {
        "Hostname": s.hostname,
        "Domainname": s.domainname,
        "User": s.user,
        "AttachStdin": s.attach_stdin,
        "AttachStdout": s.attach_stdout,
        "AttachStderr": s.attach_stderr,
        "ExposedPorts": {p: {} for p in s.exposed_ports} or None,
        "Tty": s.tty,
        "OpenStdin": s.open_stdin,
        "StdinOnce": s.stdin_once,
        "Env": list(s.env),
        "Cmd": s.cmd,
        "Healthcheck": _healthcheck_json(s.healthcheck, s.health_on_failure),
        "Image": s.image,
        "Volumes": {v: {} for v in s.volumes} or None,
        "WorkingDir": s.working_dir,
        "Entrypoint": s.entrypoint,
        "OnBuild": s.on_build or None,
        "Labels": dict(s.labels),
        **({"StopSignal": s.stop_signal} if s.stop_signal else {}),
        **({"StopTimeout": s.stop_timeout} if s.stop_timeout is not None else {}),
        **({"Shell": s.shell} if s.shell else {}),
        **({"ArgsEscaped": True} if s.args_escaped else {}),
        **({"MacAddress": mac} if mac else {}),
    }


def host_config_json(c: Container, links: list[str] | None = None) -> dict[str, Any]:
    """`HostConfig`; `links` as `/child:/parent/alias` (engine.containers.links.shown)."""
    h = c.host
    return {
        "Binds": list(h.binds) or None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": h.log_config.type, "Config": dict(h.log_config.config)},
        "NetworkMode": h.network_mode,
        "PortBindings": {
            port: [{"HostIp": b.host_ip, "HostPort": b.host_port} for b in bindings]
            for port, bindings in h.port_bindings.items()
        },
        "RestartPolicy": {"Name": h.restart_policy.name,
                          "MaximumRetryCount": h.restart_policy.maximum_retry_count},
        "AutoRemove": h.auto_remove,
        "VolumeDriver": h.volume_driver,
        "VolumesFrom": list(h.volumes_from) or None,
        "Mounts": list(h.mounts) or None,
        "Tmpfs": dict(h.tmpfs) or None,
        "ConsoleSize": list(h.console_size),
        "Annotations": dict(h.annotations) or None,
        "CapAdd": list(h.cap_add) or None,
        "CapDrop": list(h.cap_drop) or None,
        "CgroupnsMode": h.cgroupns_mode or "host",
        "Dns": list(h.dns),
        "DnsOptions": list(h.dns_options),
        "DnsSearch": list(h.dns_search),
        "ExtraHosts": list(h.extra_hosts) or None,
        "GroupAdd": list(h.group_add) or None,
        "IpcMode": h.ipc_mode,
        "Cgroup": "",
        "Links": links or None,
        "OomScoreAdj": h.oom_score_adj,
        "PidMode": h.pid_mode,
        "Privileged": h.privileged,
        "PublishAllPorts": h.publish_all_ports,
        "ReadonlyRootfs": h.readonly_rootfs,
        "SecurityOpt": list(h.security_opt) or None,
        "UTSMode": h.uts_mode,
        "UsernsMode": "",
        "ShmSize": h.shm_size,
        "Runtime": c.runtime,
        "Isolation": h.isolation,
        **{limit.key: getattr(h, limit.name) for limit in LIMITS},
        "CgroupParent": "",
        "BlkioWeight": 0,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [],
        "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [],
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "Devices": [{"PathOnHost": d.path_on_host, "PathInContainer": d.path_in_container,
                     "CgroupPermissions": d.cgroup_permissions} for d in h.devices],
        "DeviceCgroupRules": list(h.device_cgroup_rules) or None,
        "DeviceRequests": None,
        "MemorySwappiness": None,
        "Init": h.init,
        "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in h.ulimits] or None,
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "MaskedPaths": None,
        "ReadonlyPaths": None,
    }


def state_json(c: Container) -> dict[str, Any]:
    st = c.state
    running = st.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)
    return {
        "Status": st.status.value,
        "Running": running,
        "Paused": st.status is Status.PAUSED,
        "Restarting": st.status is Status.RESTARTING,
        "OOMKilled": st.oom_killed,
        "Dead": st.status is Status.DEAD,
        "Pid": st.pid if st.status in (Status.RUNNING, Status.PAUSED) else 0,
        "ExitCode": st.exit_code,
        "Error": st.error,
        "StartedAt": rfc3339(st.started_at),
        "FinishedAt": rfc3339(st.finished_at),
        "StopReason": st.stop_reason.value,
        "ManuallyStopped": st.manually_stopped,
        # moorage's restart-loop breaker (docs/supervision.md)
        "QuickFailures": st.quick_failures,
        "RestartLoopBroken": st.restart_loop_broken,
        **({"Health": health_json(st.health)} if st.health is not None else {}),
    }


def health_json(health: HealthState) -> dict[str, Any]:
    return {
        "Status": health.status.value,
        "FailingStreak": health.failing_streak,
        "Log": [{"Start": rfc3339(p.start), "End": rfc3339(p.end), "ExitCode": p.exit_code,
                 "Output": p.output} for p in health.log],
    }


def network_settings_json(c: Container) -> dict[str, Any]:
    mode = c.host.network_mode
    ports: dict[str, Any] = {p: None for p in c.spec.exposed_ports}
    name = "none" if mode in ("default", "bridge") else mode
    return {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": "",
        "Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": {
            name: {
                "IPAMConfig": None,
                "Links": None,
                "Aliases": None,
                "MacAddress": "",
                "DriverOpts": None,
                "GwPriority": 0,
                "NetworkID": name,
                "EndpointID": "",
                "Gateway": "",
                "IPAddress": "",
                "IPPrefixLen": 0,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "DNSNames": None,
            }
        },
    }


def inspect_json(c: Container, *, log_path: str, graph_data: dict[str, str],
                 networks: Any = None, links: list[str] | None = None) -> dict[str, Any]:
    return {
        "Id": c.id,
        "Created": rfc3339(c.created),
        "Path": c.path,
        "Args": list(c.args),
        "State": state_json(c),
        "Image": c.image_id,
        "ResolvConfPath": graph_data.get("ResolvConfPath", ""),
        "HostnamePath": graph_data.get("HostnamePath", ""),
        "HostsPath": graph_data.get("HostsPath", ""),
        "LogPath": log_path,
        "Name": "/" + c.name,
        "RestartCount": c.state.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config_json(c, links),
        "GraphDriver": {
            "Name": "overlay",
            "Data": {k: v for k, v in graph_data.items() if k in ("LowerDir", "UpperDir",
                                                                  "WorkDir", "MergedDir")},
        },
        "Mounts": mounts_json(c.mounts),
        "Config": config_json(c),
        "NetworkSettings": network_settings_json(c) if networks is None or c.networking is None
        else _net.network_settings_json(networks, c.id, c.networking, c.spec.exposed_ports),
    }


def command_text(c: Container) -> str:
    """`ps`'s COMMAND column as Docker words it: args with spaces in single quotes."""
    if not c.args:
        return c.path
    args = [f"'{a}'" if " " in a else a for a in c.args]
    return f"{c.path} {' '.join(args)}"


def shown_image(c: Container, resolve: Callable[[str], Image]) -> str:
    """What `ps` shows in IMAGE: the name as typed while it still names the same image
    (`resolve` finds an image by name), else the image ID."""
    try:
        if resolve(c.spec.image).id == c.image_id:
            return c.spec.image
    except EngineError:
        pass
    return c.image_id


def summary_json(c: Container, image_name: str, networks: Any = None,
                 link_names: Iterable[str] = ()) -> dict[str, Any]:
    """`docker ps`'s entry; `link_names`: the `/parent/alias` names links give `c`."""
    mode = c.host.network_mode
    name = "none" if mode in ("default", "bridge") else mode
    if networks is not None and c.networking is not None:
        out = summary_json(c, image_name, link_names=link_names)
        out["Ports"] = _net.summary_ports_json(networks, c.id, c.spec.exposed_ports)
        out["NetworkSettings"] = _net.summary_networks_json(networks, c.id, c.networking)
        return out
    return {
        "Id": c.id,
        "Names": ["/" + c.name, *link_names],
        "Image": image_name,
        "ImageID": c.image_id,
        "Command": command_text(c),
        "Created": int(c.created.timestamp()),
        "Ports": [],
        "Labels": dict(c.spec.labels),
        "State": c.state.status.value,
        "Status": status_text(c),
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": {name: {"NetworkID": name, "EndpointID": "",
                                                "Gateway": "", "IPAddress": "",
                                                "IPPrefixLen": 0, "MacAddress": ""}}},
        "Mounts": mounts_json(c.mounts),
    }


# `POST /containers/{id}/update` ------------------------------------------------------

#: UpdateConfig fields moord applies; the others must be absent or zero.
_UPDATABLE = frozenset({"RestartPolicy", "KernelMemory", "KernelMemoryTCP"}.union(
    *({limit.key, *limit.update_aliases} for limit in LIMITS if limit.updatable)))


def parse_update(body: dict[str, Any]) -> tuple[RestartPolicy | None, ResourceUpdate]:
    """Docker's UpdateConfig: a restart policy (None: unchanged) and resource limits
    (zero or absent: unchanged; PidsLimit null: unchanged, 0 or -1: unlimited)."""
    policy = None
    if body.get("RestartPolicy") is not None:
        raw = fields.json_object(body, "RestartPolicy")
        name = fields.string(raw, "Name", "RestartPolicy.")
        if name or raw.get("MaximumRetryCount"):
            policy = RestartPolicy(name or "no",
                                   fields.integer(raw, "MaximumRetryCount", "RestartPolicy."))
    unsupported = sorted(k for k, v in body.items()
                         if k not in _UPDATABLE and v not in (None, 0, "", [], {}, False))
    if unsupported:
        raise InvalidParameter(f"updating {', '.join(unsupported)} is not supported by moorage")
    limits = {}
    for limit in LIMITS:
        if limit.updatable:
            key = next((k for k in limit.update_aliases if k in body and limit.key not in body),
                       limit.key)
            limits[limit.name] = _limit(body, limit, key)
    return policy, ResourceUpdate(**limits)
