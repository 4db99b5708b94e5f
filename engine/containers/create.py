"""From a create request and an image to a container record: Docker's merge rules.

The image's config supplies what the request leaves out (moby's `merge`): env is
the image's with the request's values replacing same-named ones, labels likewise,
ports and volumes are unions, and the command follows the entrypoint rules below.
"""

from __future__ import annotations

import os
import posixpath

from engine.containers.model import ContainerSpec, HostSpec
from engine.containers.resources import check_limits
from engine.errors import InvalidParameter
from engine.images.model import Healthcheck, ImageConfig

RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")


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
    if policy.name not in RESTART_POLICIES and policy.name != "":
        raise InvalidParameter(f"invalid restart policy '{policy.name}'")
    if policy.maximum_retry_count < 0:
        raise InvalidParameter("invalid value for MaximumRetryCount: must be a positive integer")
    if policy.maximum_retry_count and policy.name != "on-failure":
        raise InvalidParameter(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )
    if host.auto_remove and policy.name not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    if host.shm_size < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    check_limits(host, len(os.sched_getaffinity(0)))
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
