"""The engine object handlers receive: configuration plus the services that do the work."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import attrs

from engine.config import DaemonConfig
from engine.events import EventBus

if TYPE_CHECKING:
    from engine.alerts.dispatch import AlertDispatcher
    from engine.build.service import BuildService
    from engine.containers.execs import ExecManager
    from engine.containers.manager import ContainerManager
    from engine.docker_plugins.registry import PluginRegistry
    from engine.images.store import ImageStore
    from engine.managed_plugins.store import PluginStore
    from engine.networks.service import NetworkService
    from engine.registry.service import RegistryService
    from engine.runtime.host import HostProfile
    from engine.volumes.service import VolumeService


@attrs.define(eq=False)
class Engine:
    config: DaemonConfig
    host: HostProfile
    images: ImageStore
    containers: ContainerManager
    events: EventBus
    volumes: VolumeService
    networks: NetworkService | None = None
    registry: RegistryService | None = None
    build: BuildService | None = None
    execs: ExecManager | None = None
    plugins: PluginStore | None = None  # managed plugins (`docker plugin create`)
    docker_plugins: PluginRegistry | None = None  # legacy plugins: sockets and spec files
    alerts: AlertDispatcher | None = None  # webhooks on container trouble (engine/alerts)
    id: str = ""  # <data-root>/engine-id, read once at start-up
    started_at: dt.datetime = attrs.field(factory=lambda: dt.datetime.now(dt.timezone.utc))
