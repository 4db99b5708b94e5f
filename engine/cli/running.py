"""`run` and `create`: their flags, the options they make, and creating the container."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import click

from engine.cli import alertflags, hostflags, netflags, probeflags, resourceflags, restartflags
from engine.cli.app import App, error_line, exit_code, out, pass_app
from engine.cli.attach import AttachPlan, run_attached, start_container, terminal_size
from engine.cli.client import APIError, Client
from engine.cli.errors import CommandError
from engine.cli.images import pull_image
from engine.cli.mountflags import mount_config
from engine.cli.options import (
    HEALTH_ACTIONS,
    ContainerOptions,
    OptionError,
    build_env,
    build_labels,
    familiar_reference,
    health_config,
    restart_policy,
)
from engine.containers.depends_labels import (
    DEPENDS_ON_LABEL,
    DEPENDS_ON_TIMEOUT_LABEL,
    parse_depends_on,
    parse_timeout,
)
from engine.errors import InvalidParameter


def depends_on_labels(depends_on: tuple[str, ...], timeout: str | None) -> dict[str, str]:
    """`--depends-on` and its timeout as the labels moord reads (checked here first)."""
    labels: dict[str, str] = {}
    try:
        if depends_on:
            value = ",".join(depends_on)
            parse_depends_on(value)
            labels[DEPENDS_ON_LABEL] = value
        if timeout is not None:
            parse_timeout(timeout)
            labels[DEPENDS_ON_TIMEOUT_LABEL] = timeout
    except InvalidParameter as exc:
        raise OptionError(exc.message) from None
    return labels


RUN_CONTEXT = {"allow_interspersed_args": False, "help_option_names": ["--help"]}


def _container_flags(for_run: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The flags of `run` and `create` (`run` adds -d and --sig-proxy), sorted as in help."""
    run_only = [
        click.option("-d", "--detach", is_flag=True,
                     help="Run container in background and print container ID"),
        click.option("--detach-keys", metavar="STRING", default="",
                     help="Override the key sequence for detaching a container"),
        click.option("--sig-proxy/--no-sig-proxy", default=True,
                     help="Proxy received signals to the process (default true)"),
    ]
    decorators = [
        click.option("--entrypoint", metavar="STRING",
                     help="Overwrite the default ENTRYPOINT of the image"),
        click.option("--depends-on", multiple=True, metavar="LIST",
                     help="Start after these containers at moord's start "
                          "(NAME[:started|healthy], label moorage.depends-on)"),
        click.option("--depends-on-timeout", metavar="DURATION",
                     help="Longest to wait for them before starting anyway (2m)"),
        click.option("-e", "--env", "env", multiple=True, metavar="LIST",
                     help="Set environment variables (a bare NAME takes its value from here)"),
        click.option("--env-file", multiple=True, metavar="LIST",
                     help="Read in a file of environment variables"),
        click.option("--health-cmd", metavar="STRING",
                     help="Command to run in the container to check its health"),
        click.option("--health-http", metavar="[HOST]:PORT/PATH",
                     help="moord GETs this in the container's network namespace as its "
                          "health check (200-399 is healthy)"),
        click.option("--health-interval", metavar="DURATION",
                     help="Time between health checks (ms|s|m|h), 30s if unset"),
        click.option("--health-on-failure", type=click.Choice(HEALTH_ACTIONS),
                     help="What an unhealthy container gets: none, kill, restart or stop"),
        click.option("--health-retries", type=int, metavar="INT",
                     help="Consecutive failures before the container is unhealthy (3)"),
        click.option("--health-start-interval", metavar="DURATION",
                     help="Time between health checks during the start period (5s)"),
        click.option("--health-start-period", metavar="DURATION",
                     help="Time to start up, when failed checks don't count yet (0s)"),
        click.option("--health-tcp", metavar="[HOST]:PORT",
                     help="moord connects to this in the container's network namespace as "
                          "its health check"),
        click.option("--health-timeout", metavar="DURATION",
                     help="Longest a health check may run before it counts as failed (30s)"),
        click.option("-h", "--hostname", default="", metavar="STRING",
                     help="Container host name"),
        click.option("--init", is_flag=True,
                     help="Run an init inside the container that forwards signals and reaps "
                          "processes"),
        click.option("-i", "--interactive", is_flag=True,
                     help="Keep STDIN open even if not attached"),
        click.option("-l", "--label", "labels", multiple=True, metavar="LIST",
                     help="Set meta data on a container"),
        click.option("--label-file", multiple=True, metavar="LIST",
                     help="Read in a line delimited file of labels"),
        click.option("--mount", "mount", multiple=True, metavar="MOUNT",
                     help="Attach a filesystem mount to the container"),
        click.option("--name", metavar="STRING", help="Assign a name to the container"),
        click.option("--network", "--net", "network", metavar="NETWORK",
                     help="Connect a container to a network (none, host, default)"),
        click.option("--no-healthcheck", is_flag=True,
                     help="Disable the image's HEALTHCHECK"),
        click.option("--pull", type=click.Choice(["missing", "always", "never"]),
                     default="missing", show_default=True,
                     help="Pull image before running"),
        click.option("--read-only", is_flag=True,
                     help="Mount the container's root filesystem as read only"),
        click.option("--restart", metavar="STRING",
                     help="Restart policy to apply when a container exits (default \"no\")"),
        click.option("--rm", "auto_remove", is_flag=True,
                     help="Automatically remove the container and its associated anonymous "
                          "volumes when it exits"),
        click.option("--stop-signal", metavar="STRING",
                     help="Signal to stop the container"),
        click.option("--stop-timeout", type=int, metavar="INT",
                     help="Timeout (in seconds) to stop a container"),
        click.option("--tmpfs", multiple=True, metavar="LIST",
                     help="Mount a tmpfs directory (PATH[:OPTIONS])"),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY"),
        click.option("-u", "--user", default="", metavar="STRING",
                     help="Username or UID (format: <name|uid>[:<group|gid>])"),
        click.option("-v", "--volume", "volume", multiple=True, metavar="LIST",
                     help="Bind mount a volume (SRC:DST[:ro|rw|z|Z|nocopy|propagation] or DST)"),
        click.option("--volume-driver", metavar="STRING",
                     help="Optional volume driver for the container"),
        click.option("--volumes-from", multiple=True, metavar="LIST",
                     help="Mount volumes from the specified container(s) (CONTAINER[:ro])"),
        click.option("-w", "--workdir", default="", metavar="STRING",
                     help="Working directory inside the container"),
        click.argument("image"),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    decorators = (netflags.click_options() + resourceflags.click_options()
                  + hostflags.click_options() + alertflags.click_options()
                  + restartflags.click_options() + decorators)
    if for_run:
        decorators = run_only + decorators

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def options_from(params: Mapping[str, Any], detach: bool) -> ContainerOptions:
    """The container that `run` or `create` flags (click's parsed `params`) describe."""
    if params["auto_remove"] and params["restart"] and params["restart"] != "no":
        raise OptionError("conflicting options: cannot specify both --restart and --rm")
    tty = bool(params["tty"])
    probe = probeflags.probe_labels(params)
    return ContainerOptions(
        image=params["image"],
        command=list(params["command"]),
        detach=detach,
        interactive=bool(params["interactive"]),
        tty=tty,
        auto_remove=bool(params["auto_remove"]),
        name=params["name"],
        env=build_env(params["env"], params["env_file"]),
        labels=restartflags.restart_labels(
            params, {**build_labels(params["labels"], params["label_file"]),
                     **alertflags.alert_labels(params), **probe,
                     **depends_on_labels(params["depends_on"], params["depends_on_timeout"])}),
        entrypoint=params["entrypoint"],
        workdir=params["workdir"],
        user=params["user"],
        init=bool(params["init"]),
        network=params["network"],
        restart=restart_policy(params["restart"]),
        stop_signal=params["stop_signal"],
        stop_timeout=params["stop_timeout"],
        hostname=params["hostname"],
        console_size=terminal_size() if tty else (0, 0),
        healthcheck=health_config(on_failure=params["health_on_failure"]) if probe else
        health_config(
            cmd=params["health_cmd"], interval=params["health_interval"],
            timeout=params["health_timeout"], start_period=params["health_start_period"],
            start_interval=params["health_start_interval"], retries=params["health_retries"],
            disabled=bool(params["no_healthcheck"]), on_failure=params["health_on_failure"]),
        mounts=mount_config(volumes=params["volume"], mounts=params["mount"],
                            tmpfs=params["tmpfs"], volumes_from=params["volumes_from"],
                            read_only=bool(params["read_only"]),
                            volume_driver=params["volume_driver"]),
        network_flags=netflags.NetworkFlags.from_params(params),
        resources=resourceflags.ResourceFlags.from_params(params),
        host_flags=hostflags.HostFlags.from_params(params),
    )


def create_container(client: Client, opts: ContainerOptions, pull: str = "missing") -> str:
    """POST /containers/create, pulling once on "no such image" like docker; returns the ID."""
    params = {"name": opts.name} if opts.name else None
    body = opts.create_body()
    if pull == "always":
        pull_image(client, opts.image)
    try:
        result = client.post_json("/containers/create", params, json=body)
    except APIError as exc:
        if exc.status != 404 or pull != "missing":
            raise
        error_line(f"Unable to find image '{familiar_reference(opts.image)}' locally")
        pull_image(client, opts.image)
        result = client.post_json("/containers/create", params, json=body)
    for warning in (result or {}).get("Warnings") or []:
        error_line(f"WARNING: {warning}")
    return str(result["Id"])


@click.command(context_settings=RUN_CONTEXT)
@_container_flags(for_run=True)
@pass_app
def run(app: App, detach: bool, sig_proxy: bool, detach_keys: str, **params: Any) -> None:
    """Create and run a new container from an image.

    Options after IMAGE belong to COMMAND. Without -d, output is streamed and moor exits
    with the container's exit status.
    """
    client = app.client
    with exit_code(125):
        opts = options_from(params, detach)
        if opts.tty and opts.interactive and not detach and not sys.stdin.isatty():
            raise CommandError("the input device is not a TTY", 1)
        container_id = create_container(client, opts, params["pull"])
        if detach:
            start_container(client, container_id)
            out(container_id + "\n")
            return
    plan = AttachPlan(container_id, tty=opts.tty, stdin=opts.interactive,
                      auto_remove=opts.auto_remove, sig_proxy=sig_proxy,
                      detach_keys=detach_keys)
    with exit_code(125):
        status = run_attached(client, plan)
    raise SystemExit(status)


@click.command(context_settings=RUN_CONTEXT)
@_container_flags(for_run=False)
@pass_app
def create(app: App, **params: Any) -> None:
    """Create a new container without starting it; prints its ID."""
    with exit_code(125):
        opts = options_from(params, detach=False)
        out(create_container(app.client, opts, params["pull"]) + "\n")
