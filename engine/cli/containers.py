"""Container commands: run, create, start, stop, kill, restart, rm, ps, logs, wait, ..."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import click

from engine.cli import hostflags, netflags, resourceflags
from engine.cli.app import App, describe, error_line, exit_code, for_each, out, pass_app
from engine.cli.attach import (
    AttachPlan,
    Outputs,
    pump,
    run_attached,
    start_container,
    terminal_size,
)
from engine.cli.client import APIError, Client, ClientError, quote_path
from engine.cli.errors import CommandError
from engine.cli.formatting import (
    TemplateError,
    ellipsis,
    go_quote,
    go_time,
    human_size,
    render_listing,
    since,
    truncate_id,
)
from engine.cli.images import pull_image
from engine.cli.inspecting import print_inspected
from engine.cli.mountflags import mount_config
from engine.cli.options import (
    HEALTH_ACTIONS,
    ContainerOptions,
    OptionError,
    api_timestamp,
    build_env,
    build_filters,
    build_labels,
    familiar_reference,
    health_config,
    restart_policy,
)

RUN_CONTEXT = {"allow_interspersed_args": False, "help_option_names": ["--help"]}


def _cpath(name: str, suffix: str = "") -> str:
    return f"/containers/{quote_path(name)}{suffix}"


# --- run / create --------------------------------------------------------------------

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
        click.option("-e", "--env", "env", multiple=True, metavar="LIST",
                     help="Set environment variables (a bare NAME takes its value from here)"),
        click.option("--env-file", multiple=True, metavar="LIST",
                     help="Read in a file of environment variables"),
        click.option("--health-cmd", metavar="STRING",
                     help="Command to run in the container to check its health"),
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
                  + hostflags.click_options() + decorators)
    if for_run:
        decorators = run_only + decorators

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def _options_from(params: Mapping[str, Any], detach: bool) -> ContainerOptions:
    if params["auto_remove"] and params["restart"] and params["restart"] != "no":
        raise OptionError("conflicting options: cannot specify both --restart and --rm")
    tty = bool(params["tty"])
    return ContainerOptions(
        image=params["image"],
        command=list(params["command"]),
        detach=detach,
        interactive=bool(params["interactive"]),
        tty=tty,
        auto_remove=bool(params["auto_remove"]),
        name=params["name"],
        env=build_env(params["env"], params["env_file"]),
        labels=build_labels(params["labels"], params["label_file"]),
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
        healthcheck=health_config(
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
        opts = _options_from(params, detach)
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
        opts = _options_from(params, detach=False)
        out(create_container(app.client, opts, params["pull"]) + "\n")


# --- start / stop / kill / restart / rm / pause ---------------------------------------

@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("--detach-keys", metavar="STRING", default="",
              help="Override the key sequence for detaching a container")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
@pass_app
def start(app: App, attach: bool, detach_keys: str, interactive: bool,
          containers: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    client = app.client
    if attach or interactive:
        if len(containers) > 1:
            raise CommandError("you cannot start and attach multiple containers at once")
        info = client.get_json(_cpath(containers[0], "/json"))
        config = info.get("Config") or {}
        host_config = info.get("HostConfig") or {}
        plan = AttachPlan(info["Id"], tty=bool(config.get("Tty")),
                          stdin=interactive and bool(config.get("OpenStdin")),
                          auto_remove=bool(host_config.get("AutoRemove")),
                          detach_keys=detach_keys)
        raise SystemExit(run_attached(client, plan))

    def one(name: str) -> None:
        client.call("POST", _cpath(name, "/start")).close()
        out(name + "\n")

    for_each(containers, one)


@click.command()
@click.option("--detach-keys", metavar="STRING", default="",
              help="Override the key sequence for detaching a container")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN")
@click.option("--sig-proxy/--no-sig-proxy", default=True,
              help="Proxy all received signals to the process (default true)")
@click.argument("container")
@pass_app
def attach(app: App, detach_keys: str, no_stdin: bool, sig_proxy: bool, container: str) -> None:
    """Attach to a running container's input and output.

    Exits with the container's status when it stops.
    """
    client = app.client
    try:
        info = client.get_json(_cpath(container, "/json"))
    except ClientError as exc:
        raise CommandError(describe(exc)) from None
    state = info.get("State") or {}
    if not state.get("Running"):
        raise CommandError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise CommandError("You cannot attach to a paused container, unpause it first")
    config = info.get("Config") or {}
    plan = AttachPlan(info["Id"], tty=bool(config.get("Tty")),
                      stdin=not no_stdin and bool(config.get("OpenStdin")),
                      auto_remove=False, sig_proxy=sig_proxy, detach_keys=detach_keys)
    try:
        status = run_attached(client, plan, start=False)
    except ClientError as exc:
        raise CommandError(describe(exc)) from None
    raise SystemExit(status)


@click.command()
@click.option("-s", "--signal", "signal_", metavar="STRING",
              help="Signal to send to the container")
@click.option("-t", "--timeout", "--time", "timeout", type=int, metavar="INT",
              help="Seconds to wait before killing the container")
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
@pass_app
def stop(app: App, signal_: str | None, timeout: int | None,
         containers: tuple[str, ...]) -> None:
    """Stop one or more running containers.

    Sends the container's stop signal (default SIGTERM), then SIGKILL once the grace
    period (-t, default the container's stop timeout) has passed.
    """
    client = app.client

    def one(name: str) -> None:
        client.call("POST", _cpath(name, "/stop"), {"t": timeout, "signal": signal_}).close()
        out(name + "\n")

    for_each(containers, one)


@click.command()
@click.option("-s", "--signal", "signal_", metavar="STRING",
              help="Signal to send to the container (default KILL)")
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
@pass_app
def kill(app: App, signal_: str | None, containers: tuple[str, ...]) -> None:
    """Kill one or more running containers."""
    client = app.client

    def one(name: str) -> None:
        client.call("POST", _cpath(name, "/kill"), {"signal": signal_}).close()
        out(name + "\n")

    for_each(containers, one)


@click.command()
@click.option("-s", "--signal", "signal_", metavar="STRING",
              help="Signal to send to the container")
@click.option("-t", "--timeout", "--time", "timeout", type=int, metavar="INT",
              help="Seconds to wait before killing the container")
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
@pass_app
def restart(app: App, signal_: str | None, timeout: int | None,
            containers: tuple[str, ...]) -> None:
    """Restart one or more containers."""
    client = app.client

    def one(name: str) -> None:
        client.call("POST", _cpath(name, "/restart"), {"t": timeout, "signal": signal_}).close()
        out(name + "\n")

    for_each(containers, one)


@click.command()
@click.option("-f", "--force", is_flag=True,
              help="Force the removal of a running container (uses SIGKILL)")
@click.option("-v", "--volumes", is_flag=True,
              help="Remove anonymous volumes associated with the container")
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
@pass_app
def rm(app: App, force: bool, volumes: bool, containers: tuple[str, ...]) -> None:
    """Remove one or more containers."""
    client = app.client

    def one(name: str) -> None:
        client.call("DELETE", _cpath(name), {"force": force or None,
                                             "v": volumes or None}).close()
        out(name + "\n")

    for_each(containers, one)


def _simple_action(action: str, doc: str) -> click.Command:
    @click.command(name=action, help=doc)
    @click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
    @pass_app
    def command(app: App, containers: tuple[str, ...]) -> None:
        client = app.client

        def one(name: str) -> None:
            client.call("POST", _cpath(name, f"/{action}")).close()
            out(name + "\n")

        for_each(containers, one)

    return command


pause = _simple_action("pause", "Pause all processes within one or more containers.")
unpause = _simple_action("unpause", "Unpause all processes within one or more containers.")


@click.command()
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
@pass_app
def wait(app: App, containers: tuple[str, ...]) -> None:
    """Wait for containers to stop, then print their exit codes."""
    client = app.client

    def one(name: str) -> None:
        result = client.post_json(_cpath(name, "/wait")) or {}
        error = result.get("Error") or {}
        if isinstance(error, dict) and error.get("Message"):
            raise CommandError(str(error["Message"]))
        out(f"{result.get('StatusCode', 0)}\n")

    for_each(containers, one)


@click.command()
@click.argument("container")
@click.argument("new_name", metavar="NEW_NAME")
@pass_app
def rename(app: App, container: str, new_name: str) -> None:
    """Rename a container."""
    try:
        app.client.call("POST", _cpath(container, "/rename"), {"name": new_name}).close()
    except ClientError as exc:
        raise CommandError(describe(exc)) from None


@click.command()
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, metavar="FILTER",
              help="Provide filter values (e.g. \"until=<timestamp>\")")
@pass_app
def prune(app: App, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all stopped containers."""
    from engine.cli.app import confirm

    if not force and not confirm("WARNING! This will remove all stopped containers.\n"
                                 "Are you sure you want to continue? [y/N] "):
        return
    try:
        result = app.client.post_json("/containers/prune",
                                      {"filters": build_filters(filters)}) or {}
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    deleted = result.get("ContainersDeleted") or []
    if deleted:
        out("Deleted Containers:\n" + "".join(f"{c}\n" for c in deleted) + "\n")
    out(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}\n")


# --- ps --------------------------------------------------------------------------------

PS_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}"
            "\t{{.Ports}}\t{{.Names}}")
PS_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
    "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
    "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
}


def format_ports(ports: list[dict[str, Any]]) -> str:
    """docker's PORTS column: exposed ports grouped into ranges, then host mappings.

    `80/tcp, 8000-8002/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp`.
    """
    def key(p: dict[str, Any]) -> tuple[int, str, int, str]:
        return (p.get("PrivatePort") or 0, p.get("IP") or "", p.get("PublicPort") or 0,
                p.get("Type") or "")

    groups: dict[str, list[int]] = {}  # "[ip/]type" -> [first, last], in first-seen order
    closed: list[str] = []
    mappings: list[str] = []

    def show(group_key: str, first: int, last: int) -> str:
        ip, _, kind = group_key.rpartition("/")
        span = str(first) if first == last else f"{first}-{last}"
        return f"{ip}:{span}->{span}/{kind}" if ip else f"{span}/{kind}"

    for p in sorted(ports, key=key):
        private = p.get("PrivatePort") or 0
        kind = p.get("Type") or "tcp"
        group_key = kind
        ip = p.get("IP") or ""
        if ip:
            public = p.get("PublicPort") or 0
            if public != private:
                host = f"[{ip}]" if ":" in ip else ip
                mappings.append(f"{host}:{public}->{private}/{kind}")
                continue
            group_key = f"{ip}/{kind}"
        span = groups.get(group_key)
        if span is None:
            groups[group_key] = [private, private]
        elif private == span[1] + 1:
            span[1] = private
        else:
            closed.append(show(group_key, span[0], span[1]))
            groups[group_key] = [private, private]
    result = closed + [show(k, first, last) for k, (first, last) in groups.items()]
    return ", ".join(result + mappings)


@attrs.define
class ContainerRow:
    """One `ps` line: the fields docker's templates know, computed on demand."""

    data: dict[str, Any]
    trunc: bool = True
    now: float = attrs.field(factory=time.time)

    def field(self, name: str) -> Any:
        getter = getattr(self, f"_f_{name}", None)
        if getter is None:
            raise TemplateError(f"can't evaluate field {name} in type container")
        return getter()

    def method(self, name: str, *args: Any) -> Any:
        if name == "Label" and len(args) == 1:
            return (self.data.get("Labels") or {}).get(args[0], "")
        raise TemplateError(f"can't call method {name}")

    def as_dict(self) -> dict[str, Any]:
        fields = {name: self.field(name) for name in PS_HEADERS}
        fields["Platform"] = None  # docker 28 lists it; the API gives containers none
        return dict(sorted(fields.items()))

    def _f_ID(self) -> str:
        return truncate_id(self.data.get("Id", ""), full=not self.trunc)

    def _f_Image(self) -> str:
        image = str(self.data.get("Image") or "")
        if not image:
            return "<no image>"
        if self.trunc:
            image_id = str(self.data.get("ImageID") or "")
            if image_id and truncate_id(image_id) == truncate_id(image):
                return truncate_id(image)
            return image.split("@", 1)[0]
        return image

    def _f_Command(self) -> str:
        command = str(self.data.get("Command") or "")
        return go_quote(ellipsis(command, 20) if self.trunc else command)

    def _f_CreatedAt(self) -> str:
        return go_time(float(self.data.get("Created") or 0))

    def _f_RunningFor(self) -> str:
        return since(float(self.data.get("Created") or 0), self.now)

    def _f_Ports(self) -> str:
        return format_ports(self.data.get("Ports") or [])

    def _f_State(self) -> str:
        return str(self.data.get("State") or "")

    def _f_Status(self) -> str:
        return str(self.data.get("Status") or "")

    def _f_Size(self) -> str:
        rw = human_size(self.data.get("SizeRw") or 0, 3)
        rootfs = self.data.get("SizeRootFs") or 0
        return f"{rw} (virtual {human_size(rootfs, 3)})" if rootfs else rw

    def _f_Names(self) -> str:
        names = []
        for name in self.data.get("Names") or []:
            bare = name.lstrip("/")
            if self.trunc and "/" in bare:
                continue  # a legacy link alias, not the container's own name
            names.append(bare)
        return ",".join(names)

    def _f_Labels(self) -> str:
        labels = self.data.get("Labels") or {}
        return ",".join(f"{k}={labels[k]}" for k in sorted(labels))

    def _f_Mounts(self) -> str:
        names = []
        for m in self.data.get("Mounts") or []:
            name = m.get("Name") or m.get("Source") or ""
            names.append(ellipsis(name, 15) if self.trunc and len(name) > 15 else name)
        return ",".join(names)

    def _f_Networks(self) -> str:
        networks = ((self.data.get("NetworkSettings") or {}).get("Networks") or {})
        return ",".join(sorted(networks))

    def _f_LocalVolumes(self) -> str:
        mounts = self.data.get("Mounts") or []
        return str(sum(1 for m in mounts if m.get("Driver") == "local"))


@click.command()
@click.option("-a", "--all", "all_", is_flag=True,
              help="Show all containers (default shows just running)")
@click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER",
              help="Filter output based on conditions provided (key=value)")
@click.option("--format", "fmt", metavar="STRING",
              help="Format output: 'table', 'table TEMPLATE', 'json', or a Go template "
                   "such as '{{.ID}} {{.Names}}'")
@click.option("-n", "--last", type=int, default=-1, metavar="INT",
              help="Show n last created containers (includes all states)")
@click.option("-l", "--latest", is_flag=True,
              help="Show the latest created container (includes all states)")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@pass_app
def ps(app: App, all_: bool, filters: tuple[str, ...], fmt: str | None, last: int,
       latest: bool, no_trunc: bool, quiet: bool, size: bool) -> None:
    """List containers."""
    limit = 1 if latest else (last if last > 0 else None)
    try:
        params = {"all": True if (all_ or limit) else None, "limit": limit,
                  "size": True if size or (fmt and "Size" in fmt) else None,
                  "filters": build_filters(filters)}
        containers = app.client.get_json("/containers/json", params) or []
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    rows = [ContainerRow(c, trunc=not no_trunc) for c in containers]
    if quiet:
        out("".join(row.field("ID") + "\n" for row in rows))
        return
    table = PS_TABLE + ("\t{{.Size}}" if size else "")
    try:
        out(render_listing(fmt, rows, table, PS_HEADERS))
    except TemplateError as exc:
        raise CommandError(f"failed to execute template: {exc}") from None


# --- logs --------------------------------------------------------------------------------

@click.command()
@click.option("--details", is_flag=True, help="Show extra details provided to logs")
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("--since", metavar="STRING",
              help='Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative '
                   '(e.g. "42m" for 42 minutes)')
@click.option("-n", "--tail", default="all", metavar="STRING",
              help='Number of lines to show from the end of the logs (default "all")')
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("--until", metavar="STRING",
              help='Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative '
                   '(e.g. "42m" for 42 minutes)')
@click.argument("container")
@pass_app
def logs(app: App, details: bool, follow: bool, since: str | None, tail: str,
         timestamps: bool, until: str | None, container: str) -> None:
    """Fetch the logs of a container."""
    client = app.client
    try:
        now = time.time()
        params = {
            "stdout": 1, "stderr": 1,
            "since": api_timestamp(since, now) if since else None,
            "until": api_timestamp(until, now) if until else None,
            "timestamps": timestamps or None, "follow": follow or None,
            "tail": tail, "details": details or None,
        }
        info = client.get_json(_cpath(container, "/json"))
        tty = bool((info.get("Config") or {}).get("Tty"))
        response = client.call("GET", _cpath(container, "/logs"), params)
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    with response:
        try:
            failure = pump(response.iter_body(), tty, Outputs())
        except ClientError as exc:
            raise CommandError(describe(exc)) from None
    if failure:
        raise CommandError(failure)


# --- inspect -------------------------------------------------------------------------

def inspect_one(client: Client, name: str, kind: str | None, size: bool) -> Any:
    """Containers first, then images, as `docker inspect` looks things up."""
    lookups: list[tuple[str, str, dict[str, Any]]] = []
    if kind in (None, "container"):
        lookups.append(("container", _cpath(name, "/json"), {"size": size or None}))
    if kind in (None, "image"):
        lookups.append(("image", f"/images/{quote_path(name)}/json", {}))
    for _, path, params in lookups:
        try:
            return client.get_json(path, params)
        except APIError as exc:
            if exc.status != 404:
                raise
    what = {"container": "container", "image": "image"}.get(kind or "", "object")
    raise CommandError(f"Error: No such {what}: {name}")


def inspect_command(kind: str | None) -> click.Command:
    """`inspect` (any object, or `--type`), `container inspect`, `image inspect`."""
    what = {"container": "containers", "image": "images"}.get(kind or "", "containers or images")

    @click.command(name="inspect",
                   help=f"Return low-level information on {what}, as JSON.")
    @click.option("-f", "--format", "fmt", metavar="STRING",
                  help="Format output using a Go template (e.g. '{{.State.Status}}') or 'json'")
    @click.option("-s", "--size", is_flag=True,
                  help="Display total file sizes if the type is container")
    @click.argument("names", nargs=-1, required=True, metavar="NAME|ID [NAME|ID...]")
    @pass_app
    def command(app: App, fmt: str | None, size: bool, names: tuple[str, ...],
                kind: str | None = kind) -> None:
        inspect_objects(app.client, names, kind, fmt, size)

    if kind is None:
        command = click.option("--type", "kind", type=click.Choice(["container", "image"]),
                               help="Only look for objects of this type")(command)
    return command


def inspect_objects(client: Client, names: tuple[str, ...], kind: str | None,
                    fmt: str | None, size: bool) -> None:
    """Print the objects found as a JSON array (or through `--format`), then the misses."""

    found: list[Any] = []
    errors: list[str] = []
    for name in names:
        try:
            found.append(inspect_one(client, name, kind, size))
        except CommandError as exc:
            errors.append(exc.message)
        except APIError as exc:
            errors.append(describe(exc))
        except ClientError as exc:
            raise CommandError(describe(exc)) from None
    print_inspected(found, errors, fmt)


inspect = inspect_command(None)

