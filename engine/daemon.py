"""moord: one trio process that serves the Docker API and supervises containers.

TERM and INT stop it cleanly: it stops accepting requests and exits, leaving every
container running under its conmon (`stop-containers-on-shutdown` makes it stop
them first, in parallel, each with its grace period). HUP is logged (config reload
comes with the supervision work). The next moord re-adopts what is still running.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from pathlib import Path

import trio

from engine import fsutil
from engine.api.handlers import containers as containers_api
from engine.api.handlers import images as images_api
from engine.api.handlers import logs as logs_api
from engine.api.handlers import system as system_api
from engine.api.router import route_table
from engine.api.server import APIServer
from engine.config import DaemonConfig, load_config
from engine.containers.manager import ContainerManager
from engine.engine import Engine
from engine.errors import HostNotReady
from engine.images.store import ImageStore
from engine.runtime.host import probe_host

log = logging.getLogger("moord")


def _prepare_dirs(config: DaemonConfig) -> None:
    for d in (config.data_root, config.data_root / "containers", config.data_root / "state",
              config.exec_root, config.exec_root / "crun", config.exec_root / "runc",
              config.exec_root / "socks"):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(config.data_root, 0o711)
    engine_id = config.data_root / "engine-id"
    if not engine_id.exists():
        fsutil.atomic_write(engine_id, (str(uuid.uuid4()) + "\n").encode(), mode=0o644)


def _write_pidfile(path: Path) -> None:
    fsutil.atomic_write(path, f"{os.getpid()}\n".encode(), mode=0o644, durable=False)


async def run_daemon(config: DaemonConfig) -> None:
    host = await trio.to_thread.run_sync(probe_host, config)
    for warning in host.warnings:
        log.warning("%s", warning)
    await trio.to_thread.run_sync(_prepare_dirs, config)
    pidfile = config.pidfile_path
    await trio.to_thread.run_sync(_write_pidfile, pidfile)
    images = await ImageStore.open(config.data_root / "images", durable=config.durable_store)
    containers = await trio.to_thread.run_sync(ContainerManager.open, config, host, images)
    engine = Engine(config=config, host=host, images=images, containers=containers)
    routes = route_table([system_api.router, containers_api.router, logs_api.router,
                          images_api.router])
    server = APIServer(routes, engine)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(containers.run)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
                await nursery.start(
                    lambda task_status: server.serve_unix(
                        config.socket_path, mode=int(config.socket_mode, 8), group=config.socket_group,
                        task_status=task_status))
                log.info("moord %s ready on %s (runtime %s, cgroup v%d, data root %s)",
                         _version(), config.socket_path, host.default_runtime,
                         host.cgroups.version, config.data_root)
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        log.info("SIGHUP: configuration reload is not implemented yet")
                        continue
                    log.info("%s: shutting down", signal.Signals(signum).name)
                    break
            containers.shutting_down = True
            if config.stop_containers_on_shutdown:
                log.info("stopping containers before exit")
                await containers.stop_all()
            nursery.cancel_scope.cancel()
    finally:
        try:
            pidfile.unlink()
        except FileNotFoundError:
            pass
    log.info("moord stopped; containers keep running under conmon")


def _version() -> str:
    import engine

    return engine.__version__


def main(argv: list[str] | None = None) -> None:
    config = load_config(argv)
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config.socket_path  # noqa: B018 - validates --host early
    except ValueError as exc:
        sys.exit(f"moord: {exc}")
    try:
        trio.run(run_daemon, config)
    except HostNotReady as exc:
        sys.exit(f"moord: this host cannot run containers: {exc.message}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
