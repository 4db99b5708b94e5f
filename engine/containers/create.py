"""From a create request and an image to a container record: Docker's merge rules.

The image's config supplies what the request leaves out (moby's `merge`): env is
the image's with the request's values replacing same-named ones, labels likewise,
ports and volumes are unions, and the command follows the entrypoint rules below.
`create_container` checks the request as Docker does, names it, claims its volumes
and writes the record.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import posixpath
from typing import TYPE_CHECKING, Any

import trio

from engine import ids
from engine.containers import links, names, namespaces, netshare, start_order
from engine.containers.layout import ContainerPaths
from engine.containers.model import Container, ContainerSpec, HostSpec, LogConfig
from engine.containers.policy import check_restart_policy
from engine.containers.probelabels import probe_from_labels
from engine.containers.resources import check_limits
from engine.containers.restart_labels import check_restart_labels
from engine.containers.signals import parse_signal
from engine.errors import InvalidParameter
from engine.images.model import Healthcheck, ImageConfig
from engine.limits import MAX_HOSTNAME_BYTES
from engine.networks.validation import check_network_mode
from engine.runtime.rlimits import validate_ulimits
from engine.runtime.security import parse_security_opt
from engine.volumes.model import MountRequest
from engine.volumes.parse import parse_mount_requests, parse_volumes_from, volumes_from
from plugins.contracts import InvalidLogOption

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager



def merge_env(base: list[str], override: list[str]) -> list[str]:
    """`base` with entries of `override` replacing those of the same name, in order."""
    merged: dict[str, str] = {}
    for entry in [*base, *override]:
        key = entry.split("=", 1)[0]
        merged[key] = entry
    return list(merged.values())


def merge_healthcheck(own: Healthcheck | None, image: Healthcheck | None) -> Healthcheck | None:
    """moby's merge: each field the request leaves empty (or zero) comes from the image."""
    if own is None or image is None:
        return own if own is not None else image
    return Healthcheck(
        test=own.test or image.test,
        interval=own.interval or image.interval,
        timeout=own.timeout or image.timeout,
        start_period=own.start_period or image.start_period,
        start_interval=own.start_interval or image.start_interval,
        retries=own.retries or image.retries,
    )


def merge_image_config(spec: ContainerSpec, image: ImageConfig) -> ContainerSpec:
    """The request's spec with the image's defaults filled in (the request wins)."""
    cmd, entrypoint = spec.cmd, spec.entrypoint
    args_escaped = spec.args_escaped
    if not entrypoint:
        if not cmd:
            cmd = list(image.cmd) if image.cmd is not None else None
            args_escaped = image.args_escaped
        if entrypoint is None:
            entrypoint = list(image.entrypoint) if image.entrypoint is not None else None
    labels = dict(image.labels)
    labels.update(spec.labels)
    return ContainerSpec(
        image=spec.image,
        cmd=cmd,
        entrypoint=entrypoint,
        env=merge_env(image.env, spec.env),
        working_dir=spec.working_dir or image.working_dir,
        user=spec.user or image.user,
        labels=labels,
        hostname=spec.hostname,
        domainname=spec.domainname,
        tty=spec.tty,
        open_stdin=spec.open_stdin,
        stdin_once=spec.stdin_once,
        attach_stdin=spec.attach_stdin,
        attach_stdout=spec.attach_stdout,
        attach_stderr=spec.attach_stderr,
        stop_signal=spec.stop_signal or image.stop_signal,
        stop_timeout=spec.stop_timeout,
        exposed_ports=sorted(set(image.exposed_ports) | set(spec.exposed_ports)),
        volumes=sorted(set(image.volumes) | set(spec.volumes)),
        healthcheck=merge_healthcheck(spec.healthcheck, image.healthcheck),
        health_on_failure=spec.health_on_failure,
        network_disabled=spec.network_disabled,
        on_build=list(spec.on_build or image.on_build),
        shell=spec.shell if spec.shell is not None else image.shell,
        args_escaped=args_escaped,
    )


def process_of(spec: ContainerSpec) -> tuple[str, list[str]]:
    """Path and args of the container's first process; an empty command is a 400."""
    argv = [*(spec.entrypoint or []), *(spec.cmd or [])]
    if not argv or argv[0] == "":
        raise InvalidParameter("No command specified")
    return argv[0], argv[1:]


def validate(spec: ContainerSpec, host: HostSpec) -> None:
    """Refuse what Docker refuses at create time, with its words."""
    if spec.working_dir and not posixpath.isabs(spec.working_dir):
        raise InvalidParameter(
            f"the working directory '{spec.working_dir}' is invalid, it needs to be an absolute path"
        )
    policy = host.restart_policy
    check_restart_policy(policy)
    if host.auto_remove and policy.name not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    if host.shm_size < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    if len(spec.hostname.encode()) > MAX_HOSTNAME_BYTES:  # sethostname(2) would fail at start
        raise InvalidParameter(f"hostname {json.dumps(spec.hostname)} is too long "
                               f"(maximum {MAX_HOSTNAME_BYTES} bytes)")
    check_limits(host, len(os.sched_getaffinity(0)))
    namespaces.check_modes(host)
    if host.uts_mode == "host" and spec.hostname:
        raise InvalidParameter("conflicting options: hostname and the UTS mode")
    for env in spec.env:
        if env.startswith("="):
            raise InvalidParameter(f"invalid environment variable: {env}")
    hc = spec.healthcheck
    if hc is not None:
        for label, value in (("Interval", hc.interval), ("Timeout", hc.timeout),
                             ("StartPeriod", hc.start_period), ("StartInterval", hc.start_interval)):
            if value != 0 and value < 1_000_000:
                raise InvalidParameter(f"{label} in Healthcheck cannot be less than 1ms")
        if hc.retries < 0:
            raise InvalidParameter("Retries in Healthcheck cannot be negative")


def apply_probe_labels(own: Healthcheck | None, merged: ContainerSpec) -> None:
    """An engine-run probe (label `moorage.health.http` or `.tcp`, checked here) is the
    container's one health check: refused beside a Healthcheck of the request's own, and
    it replaces the image's HEALTHCHECK (only `OnFailure` of the request's is kept)."""
    if probe_from_labels(merged.labels) is None:
        return
    if own is not None and (own.test or own.interval or own.timeout or own.start_period
                            or own.start_interval or own.retries):
        raise InvalidParameter(
            "conflicting options: a probe label (moorage.health.http or moorage.health.tcp) "
            "and a Healthcheck (--health-cmd, --health-interval, …, --no-healthcheck); the "
            "probe's timing goes in the labels moorage.health.interval, .timeout, .retries, "
            ".start-period and .start-interval")
    merged.healthcheck = own


async def create_container(m: ContainerManager, name: str | None, spec: ContainerSpec,
                           host: HostSpec, endpoints: Any = None, *, build_step: bool = False,
                           ) -> tuple[Container, list[str]]:
    """A new record from a create request: checked, named, its volumes claimed, persisted.
    `build_step` marks a build's RUN container in the record (see `Container.build_step`)."""
    warnings: list[str] = []
    check_network_mode(host.network_mode, hostname=spec.hostname, links=host.links, dns=host.dns,
                       extra_hosts=host.extra_hosts, port_bindings=host.port_bindings,
                       publish_all=host.publish_all_ports, exposed_ports=spec.exposed_ports)
    if spec.stop_signal:  # the request's own (an image's was checked when it was built)
        parse_signal(spec.stop_signal)
    image = m.images.resolve(spec.image)
    merged = merge_image_config(spec, image.config)
    validate(merged, host)
    apply_probe_labels(spec.healthcheck, merged)
    check_restart_labels(merged.labels, m.config.restart_delay_max)
    if host.oom_kill_disable and not host.memory:
        warnings.append("OOM killer is disabled for the container, but no memory limit is set, "
                        "this can result in the system running out of resources.")
    host.network_mode = netshare.normalised_mode(m, host.network_mode)
    networking = None
    if m.networks is not None:
        networking, net_warnings = m.networks.validate_container_networking(
            network_mode=host.network_mode, endpoints=endpoints,
            port_bindings={k: [(b.host_ip, b.host_port) for b in v]
                           for k, v in host.port_bindings.items()},
            publish_all=host.publish_all_ports, exposed_ports=merged.exposed_ports,
            dns=host.dns, dns_search=host.dns_search, dns_options=host.dns_options,
            extra_hosts=host.extra_hosts)
        warnings += net_warnings
    host.log_config = log_config(m, host.log_config)
    parse_security_opt(host.security_opt)
    validate_ulimits(host.ulimits)
    path, args = process_of(merged)
    runtime = m.host.runtime_for(host.runtime).name
    if host.init and not m.host.init_path:
        raise InvalidParameter("--init needs tini-static or catatonit on the host")
    resolved_links = links.resolve(m, host)
    container_id = ids.new_id()
    name = names.validate(name) if name else names.generate(m.table.names)
    start_order.check_new(name, merged.labels, m.table, m.table.lookup)
    if not merged.hostname:
        merged.hostname = container_id[:12]
    container = Container(
        id=container_id,
        name=name,
        created=dt.datetime.now(dt.timezone.utc),
        image_id=image.id,
        spec=merged,
        host=host,
        path=path,
        args=args,
        runtime=runtime,
        networking=networking,
        links=resolved_links,
        build_step=build_step,
    )
    requests = _mount_requests(m, merged, host, image.config.volumes)
    m.table.reserve_name(name, container_id)
    try:
        assert m.volumes is not None
        container.mounts = await m.volumes.claim(container_id, requests)
        paths = m.paths(container)
        await trio.to_thread.run_sync(_make_dirs, paths)
        m.table.add(container)
        await m.table.save(container)
    except BaseException:
        m.table.discard(container)
        if m.volumes is not None and container.mounts:
            with trio.CancelScope(shield=True):
                await m.volumes.release(container_id, container.mounts, remove_anonymous=True)
        raise
    m.live_of(container)
    m.publish(container, "create")
    return container, warnings


def _mount_requests(m: ContainerManager, spec: ContainerSpec, host: HostSpec,
                    image_volumes: list[str]) -> list[MountRequest]:
    inherited: list[MountRequest] = []
    for source in host.volumes_from:
        ref, mode = parse_volumes_from(source)
        other = m.table.lookup(ref)
        inherited += volumes_from(other.mounts, mode)
    return parse_mount_requests(binds=host.binds, mounts=host.mounts, anonymous=spec.volumes,
                                tmpfs=host.tmpfs, image_volumes=image_volumes,
                                inherited=inherited, volume_driver=host.volume_driver)


def log_config(m: ContainerManager, requested: LogConfig) -> LogConfig:
    """The driver (daemon default when none is named) and its options, checked; the
    daemon's default options apply when the container uses the default driver."""
    name = requested.type or m.config.log_driver
    driver = m.log_drivers.get(name)
    if driver is None:
        raise InvalidParameter(f"logger: no log driver named '{name}' is registered")
    options = dict(requested.config)
    # the daemon's defaults become the container's own, as dockerd merges its log-opts
    # (a driver that is only the file moord keeps: readable, shipping nothing)
    if (not requested.type or name == m.config.log_driver) and driver.readable \
            and not driver.ships:
        options.setdefault("max-size", m.config.log_max_size)
        options.setdefault("max-file", str(m.config.log_max_file))
    try:
        options = dict(driver.validate(options))
    except InvalidLogOption as exc:
        raise InvalidParameter(str(exc)) from None
    return LogConfig(name, options)


def _make_dirs(paths: ContainerPaths) -> None:
    for d in (paths.root, paths.upper, paths.work, paths.bundle, paths.rootfs, paths.userdata):
        d.mkdir(parents=True, exist_ok=True)
