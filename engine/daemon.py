"""moord: one trio process that serves the Docker API and supervises containers.

TERM and INT stop it cleanly: it stops accepting requests, lets those in flight
finish (up to `shutdown-timeout`), and exits, leaving every container running under
its conmon (`stop-containers-on-shutdown` makes it stop them first, in parallel, each
with its grace period). HUP re-reads the configuration (engine/daemon_reload.py). The
next moord re-adopts what is still running and starts what the restart policies say.

Under systemd (docs/service.md) moord reports READY once the API answers and every
container is re-adopted, RELOADING/READY around a reload, STOPPING on the way out, and
pings the watchdog from the event loop; with `moord.socket` it serves the socket systemd
made (so clients wait through a restart) instead of binding its own.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import sys
import uuid
from functools import partial
from pathlib import Path

import attrs
import trio

from engine import fsutil
from engine.alerts.delivery import alert_retries
from engine.alerts.dispatch import AlertDispatcher, ContainerFacts
from engine.api.handlers import archive as archive_api
from engine.api.handlers import attach as attach_api
from engine.api.handlers import build as build_api
from engine.api.handlers import commit as commit_api
from engine.api.handlers import containers as containers_api
from engine.api.handlers import df as df_api
from engine.api.handlers import events as events_api
from engine.api.handlers import execs as execs_api
from engine.api.handlers import images as images_api
from engine.api.handlers import logs as logs_api
from engine.api.handlers import networks as networks_api
from engine.api.handlers import plugins as plugins_api
from engine.api.handlers import processes as processes_api
from engine.api.handlers import registry as registry_api
from engine.api.handlers import swarm as swarm_api
from engine.api.handlers import system as system_api
from engine.api.handlers import volumes as volumes_api
from engine.api.policing import ConnectionLimits
from engine.api.router import route_table
from engine.api.server import APIServer
from engine.build.service import BuildService
from engine.config import DaemonConfig, load_config
from engine.containers.execs import ExecManager
from engine.containers.manager import ContainerDirectory, ContainerManager
from engine.daemon_logging import configure_logging
from engine.daemon_reload import apply_config, read_config
from engine.docker_plugins.authz import AuthzChain
from engine.docker_plugins.ipam import ipam_driver_table
from engine.docker_plugins.networks import network_driver_table
from engine.docker_plugins.registry import PluginRegistry, plugin_dirs
from engine.docker_plugins.volumes import volume_driver_table
from engine.engine import Engine
from engine.errors import HostNotReady
from engine.events import EventBus
from engine.images.store import ImageStore
from engine.managed_plugins.store import PluginStore
from engine.metrics.catalog import METRICS
from engine.metrics.server import open_metrics_listeners, serve_metrics
from engine.metrics.sources import EngineFacts, describe_engine, watch_daemon
from engine.networks.service import NetworkOptions, NetworkService, drivers_from_plugins
from engine.registry.service import RegistryService
from engine.runtime.host import probe_host
from engine.systemd.activation import listen_fds, listening_unix_socket, socket_path
from engine.systemd.notify import Notifier, watchdog_interval
from engine.volumes.service import VolumeService, volume_drivers_from
from plugins import drivers_by_name, load_plugin_manager
from plugins.contracts import LogDriver
from plugins.deadlines import network_drivers_with_deadlines, volume_drivers_with_deadlines
from plugins.manager import BuiltinsNotInstalled

log = logging.getLogger("moord")


def _raise_open_files_limit() -> None:
    """Lift moord's soft RLIMIT_NOFILE to its hard limit, as Go does for dockerd: every
    client connection, log follower and container's pipes is a descriptor, and the usual
    soft limit of 1,024 refuses a burst of clients long before the backlog fills.
    Containers are unaffected: their limits are set in their spec (runtime/rlimits.py)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # an unlimited hard limit still caps at the kernel's fs.nr_open (1,048,576 by default)
    wanted = 1048576 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit from %d to %d: %s", soft, wanted, exc)


def _private_modes(config: DaemonConfig) -> list[tuple[Path, int]]:
    """Modes set at every start (so an older install is tightened on upgrade), as dockerd
    has them: the data root 710, so no other local user can list or reach what it holds
    (container IDs, names in configs, logs); `containers/` 700. Nothing but root needs to
    walk these paths: a container's processes see their rootfs and volumes after the
    runtime mounted them, never the host path above."""
    return [(config.data_root, 0o710), (config.data_root / "containers", 0o700)]


def _prepare_dirs(config: DaemonConfig) -> str:
    """Make the directories moord needs; returns the engine's ID (made on first start)."""
    for d in (config.data_root, config.data_root / "containers", config.data_root / "state",
              config.exec_root, config.exec_root / "crun", config.exec_root / "runc",
              config.exec_root / "socks"):
        d.mkdir(parents=True, exist_ok=True)
    for d, mode in _private_modes(config):
        os.chmod(d, mode)
    engine_id = config.data_root / "engine-id"
    if not engine_id.exists():
        fsutil.atomic_write(engine_id, (str(uuid.uuid4()) + "\n").encode(), mode=0o644)
    return engine_id.read_text().strip()


def _alert_facts(containers: ContainerManager, container_id: str) -> ContainerFacts | None:
    """What an alert reads from a container's record (None once it is removed)."""
    c = containers.table.by_id.get(container_id)
    if c is None:
        return None
    st = c.state
    health = st.health
    last = health.log[-1].output if health is not None and health.log else ""
    return ContainerFacts(restart_policy=c.host.restart_policy.name or "no",
                          restart_count=st.restart_count, exit_code=st.exit_code,
                          health_output=last,
                          failing_streak=health.failing_streak if health is not None else 0)


def _write_pidfile(path: Path) -> None:
    fsutil.atomic_write(path, f"{os.getpid()}\n".encode(), mode=0o644, durable=False)


@attrs.define
class ServiceLink:
    """What the service manager gave moord: a notify socket, a watchdog, a listening socket."""

    notifier: Notifier = attrs.field(factory=Notifier)
    watchdog_every: float | None = None
    activated: socket.socket | None = None

    @classmethod
    def from_environ(cls) -> ServiceLink:
        """Take (and remove from the environment, so no child sees them) systemd's variables."""
        watchdog_every = watchdog_interval(os.environ)
        notifier = Notifier.from_environ(os.environ)
        activated = listening_unix_socket(listen_fds(os.environ))
        return cls(notifier, watchdog_every, activated)


async def _watchdog(link: ServiceLink) -> None:
    """WATCHDOG=1 from the event loop itself: a loop that stops turning stops the pings."""
    assert link.watchdog_every is not None
    while True:
        link.notifier.watchdog()
        await trio.sleep(link.watchdog_every)


async def _answers(path: str) -> bool:
    """Does the API answer `GET /_ping` on `path`? (READY means clients get answers.)"""
    with trio.move_on_after(10):
        try:
            stream = await trio.open_unix_socket(path)
            async with stream:
                await stream.send_all(b"GET /_ping HTTP/1.1\r\nHost: moord\r\n"
                                      b"Connection: close\r\n\r\n")
                return (await stream.receive_some(64)).startswith(b"HTTP/1.1 200")
        except (OSError, trio.BrokenResourceError):
            return False
    return False


async def run_daemon(config: DaemonConfig, config_argv: list[str] | None = None,
                     link: ServiceLink | None = None) -> None:
    link = link or ServiceLink()
    if link.watchdog_every is not None:
        # a system task lives as long as the loop (start-up included) and, unlike a
        # nursery around _serve, leaves its errors (HostNotReady) unwrapped
        trio.lowlevel.spawn_system_task(_watchdog, link, name="watchdog")
    await _serve(config, config_argv, link)


async def _serve(config: DaemonConfig, config_argv: list[str] | None, link: ServiceLink) -> None:
    metrics_listeners = (await open_metrics_listeners(config.metrics_addr)
                         if config.metrics_addr else [])
    link.notifier.status("probing the host")
    host = await trio.to_thread.run_sync(probe_host, config)
    for warning in host.warnings:
        log.warning("%s", warning)
    _raise_open_files_limit()
    engine_id = await trio.to_thread.run_sync(_prepare_dirs, config)
    pidfile = config.pidfile_path
    await trio.to_thread.run_sync(_write_pidfile, pidfile)
    events = EventBus()
    images = await ImageStore.open(config.data_root / "images", durable=config.durable_store)
    try:
        network_options = NetworkOptions(prefix=config.network_prefix,
                                         default_bridge_subnet=config.default_bridge_subnet,
                                         default_bridge_ipv6=config.ipv6,
                                         default_bridge_subnet6=config.fixed_cidr_v6)
    except ValueError as exc:
        raise HostNotReady(f"network settings: {exc}") from None
    try:
        pm = load_plugin_manager()
    except BuiltinsNotInstalled as exc:
        raise HostNotReady(str(exc)) from None
    log_drivers: dict[str, LogDriver] = drivers_by_name("log", pm.hook.moorage_log_drivers())
    docker_plugins = PluginRegistry(plugin_dirs(config.plugin_socket_dir, config.plugin_spec_dirs),
                                    timeout=config.plugin_timeout)
    volume_drivers = volume_driver_table(
        volume_drivers_with_deadlines(volume_drivers_from(pm, config.data_root),
                                      config.driver_timeout),
        docker_plugins)
    volumes = await VolumeService.open(config.data_root, volume_drivers,
                                       events=events, durable=config.durable_store)
    containers = await trio.to_thread.run_sync(ContainerManager.open, config, host, images, events,
                                               log_drivers)
    networks = await NetworkService.open(
        data_root=config.data_root, exec_root=config.exec_root,
        drivers=network_driver_table(
            network_drivers_with_deadlines(
                drivers_from_plugins(pm.hook.moorage_network_drivers()), config.driver_timeout),
            docker_plugins, config.data_root / "state" / "docker-network-plugins"),
        ipam_drivers=ipam_driver_table(docker_plugins),
        options=network_options, durable=config.durable_store)
    networks.bind_containers(ContainerDirectory(containers))
    containers.networks = networks
    if config.log_driver not in log_drivers:
        raise HostNotReady(f"log-driver {config.log_driver!r} is not a known log driver "
                           f"({', '.join(sorted(log_drivers))})")
    containers.volumes = volumes
    for c in containers.table:
        volumes.adopt(c.id, c.mounts, running=c.state.is_live)
    engine = Engine(config=config, host=host, images=images, containers=containers, events=events,
                    volumes=volumes, networks=networks, id=engine_id,
                    registry=RegistryService(config, images), docker_plugins=docker_plugins)
    engine.execs = ExecManager(containers)
    engine.alerts = AlertDispatcher(events, partial(_alert_facts, containers), engine_id,
                                    notify_url=config.notify_url, retries=alert_retries(config))
    engine.plugins = await PluginStore.open(config.data_root, durable=config.durable_store)
    engine.build = await BuildService.open(config.data_root, containers, images, engine.registry,
                                           durable=config.durable_store)
    routes = route_table([system_api.router, containers_api.router, attach_api.router,
                          logs_api.router, images_api.router, events_api.router, volumes_api.router,
                          networks_api.router, registry_api.router,
                          commit_api.router, build_api.router, execs_api.router,
                          processes_api.router, archive_api.router, df_api.router,
                          swarm_api.router, plugins_api.router])
    server = APIServer(routes, engine, limits=connection_limits(config))
    if config.authorization_plugins:
        server.authorizer = AuthzChain(docker_plugins, config.authorization_plugins)
        log.info("authorization plugins: %s", ", ".join(config.authorization_plugins))
    describe_engine(METRICS, EngineFacts(
        version=_version(), architecture=host.architecture, kernel=host.kernel_version,
        os=host.operating_system, os_version=host.os_version, daemon_id=engine_id))
    watch_daemon(METRICS, statuses=lambda: [c.state.status.value for c in containers.table],
                 subscribers=lambda: events.clients)
    try:
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
                await nursery.start(engine.alerts.run)
                await nursery.start(networks.run)
                await nursery.start(containers.run)
                if metrics_listeners:
                    await nursery.start(serve_metrics, metrics_listeners, METRICS.render)
                await nursery.start(partial(
                    server.serve_unix, config.socket_path, mode=int(config.socket_mode, 8),
                    group=config.socket_group, drain_timeout=config.shutdown_timeout,
                    activated=link.activated))
                serving = _serving_path(config, link)
                if serving and not await _answers(serving):
                    log.warning("the API on %s does not answer its own ping", serving)
                running = sum(1 for c in containers.table if c.state.is_live)
                log.info("moord %s ready on %s (runtime %s, cgroup v%d, data root %s)",
                         _version(), serving or "a passed socket", host.default_runtime,
                         host.cgroups.version, config.data_root, extra={"event": "start"})
                link.notifier.ready(f"serving on {serving}; {running} containers live")
                events.publish("daemon", "start", engine.id, {"name": socket.gethostname()})
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        link.notifier.reloading()
                        new = await trio.to_thread.run_sync(read_config, config_argv)
                        config = apply_config(engine, new)
                        server.reconfigure(connection_limits(config))
                        link.notifier.ready(f"serving on {serving}; configuration reloaded")
                        continue
                    log.info("%s: shutting down", signal.Signals(signum).name)
                    link.notifier.stopping(f"{signal.Signals(signum).name}: shutting down")
                    break
            # no new requests; the ones in flight finish (up to shutdown-timeout)
            server.close()
            containers.shutting_down = True
            if config.stop_containers_on_shutdown:
                log.info("stopping containers before exit")
                await containers.stop_all()
            with trio.move_on_after(config.shutdown_timeout + 1):
                while server.busy:
                    await server.idle.wait()
            nursery.cancel_scope.cancel()
    finally:
        try:
            pidfile.unlink()
        except FileNotFoundError:
            pass
    log.info("moord stopped; containers keep running under conmon")


def connection_limits(config: DaemonConfig) -> ConnectionLimits:
    """The API server's clocks and caps, from the `api-*` settings."""
    return ConnectionLimits(
        header_timeout=config.api_header_timeout, idle_timeout=config.api_idle_timeout,
        body_timeout=config.api_body_timeout,
        per_process=config.api_max_connections_per_process,
        per_user=config.api_max_connections_per_user)


def _serving_path(config: DaemonConfig, link: ServiceLink) -> str:
    """Where clients reach the API: the passed socket's path, or the one moord bound."""
    if link.activated is None:
        return str(config.socket_path)
    passed = socket_path(link.activated)
    if passed and passed != str(config.socket_path):
        log.warning("serving the socket systemd passed, %s, not --host %s", passed,
                    config.socket_path)
    return passed


def _version() -> str:
    import engine

    return engine.__version__


def main(argv: list[str] | None = None) -> None:
    config = load_config(argv)
    target = configure_logging(config)
    try:
        config.socket_path  # noqa: B018 - validates --host early
    except ValueError as exc:
        sys.exit(f"moord: {exc}")
    link = ServiceLink.from_environ()
    log.debug("logging to %s; notify socket %s, watchdog %s, passed socket %s", target,
              "yes" if link.notifier.enabled else "no", link.watchdog_every,
              "yes" if link.activated is not None else "no")
    try:
        trio.run(run_daemon, config, argv, link)
    except HostNotReady as exc:
        link.notifier.status(f"this host cannot run containers: {exc.message}")
        sys.exit(f"moord: this host cannot run containers: {exc.message}")
    except KeyboardInterrupt:
        pass
    finally:
        link.notifier.close()


if __name__ == "__main__":
    main()
