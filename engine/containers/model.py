"""Container records as the engine keeps them, apart from Docker's JSON.

`ContainerSpec` is the process and its defaults, already merged with the image's
config at create time (as Docker does: inspect shows the merged `Config`);
`HostSpec` is how the host runs it (`HostConfig`); `ContainerState` changes over
the container's life and is persisted on every change.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import attrs

from engine.images.model import Healthcheck
from engine.limits import Resources
from engine.networks.model import ContainerNetworking
from engine.volumes.model import MountPoint


class Status(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


class StopReason(enum.Enum):
    """Why the container last stopped; shown by inspect and events."""

    NONE = ""
    EXITED = "exited"  # the process ended by itself
    USER = "user"  # stop, kill (with a stop signal), restart, rm -f
    DAEMON_SHUTDOWN = "daemon-shutdown"
    HOST_CRASH = "host-crash"  # the host went down under it (found at start-up, boot id changed)
    MONITOR_LOST = "monitor-lost"  # conmon vanished without recording an exit
    HEALTH = "health"
    BUILD_ABANDONED = "build-abandoned"  # a build's RUN container its moord died under


@attrs.frozen
class RestartPolicy:
    name: str = "no"  # no | always | unless-stopped | on-failure
    maximum_retry_count: int = 0


@attrs.frozen
class LogConfig:
    """`json-file` is the default name because clients branch on it (docker-py's `run()`
    only reads logs back from `json-file` or `journald`); on disk it is conmon's k8s-file."""

    type: str = "json-file"
    config: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Ulimit:
    name: str
    soft: int
    hard: int


@attrs.frozen
class PortBinding:
    host_ip: str = ""
    host_port: str = ""


@attrs.frozen
class DeviceMapping:
    """`--device HOST[:CONTAINER][:PERMISSIONS]`: a host device node in the container."""

    path_on_host: str
    path_in_container: str
    cgroup_permissions: str = "rwm"


@attrs.frozen
class Link:
    """A legacy link (`--link name:alias`), resolved at create to the container it names
    (or, for one in `container:` mode, to the container whose network it shares)."""

    container_id: str
    alias: str
    name: str  # that container's name when the link was made (said once it is gone)


@attrs.define
class ContainerSpec:
    """The process to run and its environment (Docker's `Config`), image defaults merged."""

    image: str
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = attrs.field(factory=list)
    working_dir: str = ""
    user: str = ""
    labels: dict[str, str] = attrs.field(factory=dict)
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    stop_signal: str = ""
    stop_timeout: int | None = None
    exposed_ports: list[str] = attrs.field(factory=list)
    volumes: list[str] = attrs.field(factory=list)
    healthcheck: Healthcheck | None = None
    health_on_failure: str = "none"  # none | kill | restart: what an unhealthy container gets
    network_disabled: bool = False
    on_build: list[str] = attrs.field(factory=list)
    shell: list[str] | None = None
    args_escaped: bool = False


@attrs.define
class HostSpec(Resources):
    """How the host runs the container (Docker's `HostConfig`).

    Its memory, CPU and pids limits are the fields of `engine.limits.Resources`, flat as
    in Docker's `HostConfig` (which embeds `Resources`) and in the stored records.
    """

    network_mode: str = "default"
    auto_remove: bool = False
    restart_policy: RestartPolicy = attrs.field(factory=RestartPolicy)
    init: bool | None = None
    runtime: str = ""
    privileged: bool = False
    cap_add: list[str] = attrs.field(factory=list)
    cap_drop: list[str] = attrs.field(factory=list)
    readonly_rootfs: bool = False
    binds: list[str] = attrs.field(factory=list)
    mounts: list[dict[str, Any]] = attrs.field(factory=list)  # HostConfig.Mounts as sent
    volumes_from: list[str] = attrs.field(factory=list)
    volume_driver: str = ""
    log_config: LogConfig = attrs.field(factory=LogConfig)
    port_bindings: dict[str, list[PortBinding]] = attrs.field(factory=dict)
    publish_all_ports: bool = False
    dns: list[str] = attrs.field(factory=list)
    dns_search: list[str] = attrs.field(factory=list)
    dns_options: list[str] = attrs.field(factory=list)
    extra_hosts: list[str] = attrs.field(factory=list)
    links: list[str] = attrs.field(factory=list)  # HostConfig.Links as sent (`name:alias`)
    ulimits: list[Ulimit] = attrs.field(factory=list)
    shm_size: int = 64 * 1024 * 1024
    oom_score_adj: int = 0
    security_opt: list[str] = attrs.field(factory=list)
    sysctls: dict[str, str] = attrs.field(factory=dict)
    tmpfs: dict[str, str] = attrs.field(factory=dict)
    group_add: list[str] = attrs.field(factory=list)
    console_size: tuple[int, int] = (0, 0)
    ipc_mode: str = "private"
    pid_mode: str = ""
    uts_mode: str = ""
    cgroupns_mode: str = ""
    annotations: dict[str, str] = attrs.field(factory=dict)
    isolation: str = ""  # "" or "default", as asked: the only isolation Linux has
    devices: list[DeviceMapping] = attrs.field(factory=list)
    device_cgroup_rules: list[str] = attrs.field(factory=list)  # "c 7:128 rwm", checked


class HealthStatus(enum.Enum):
    NONE = "none"
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@attrs.frozen
class HealthProbe:
    """One run of the health check command (Docker keeps the last five)."""

    start: dt.datetime
    end: dt.datetime
    exit_code: int
    output: str


@attrs.define
class HealthState:
    status: HealthStatus = HealthStatus.STARTING
    failing_streak: int = 0
    log: list[HealthProbe] = attrs.field(factory=list)


@attrs.define
class ContainerState:
    status: Status = Status.CREATED
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    restart_count: int = 0
    stop_reason: StopReason = StopReason.NONE
    manually_stopped: bool = False
    conmon_pid: int = 0
    boot_id: str = ""  # the kernel's boot id when the container was started
    has_been_started: bool = False
    # the restart-loop breaker (engine/containers/restart_loop.py): quick failures in a
    # row, and whether they stopped the restart policy (until a user's start)
    quick_failures: int = 0
    restart_loop_broken: bool = False
    health: HealthState | None = None  # None: the container has no health check

    @property
    def is_live(self) -> bool:
        """A conmon (and so a container process) may exist for it."""
        return self.status in (Status.RUNNING, Status.PAUSED)


@attrs.define
class Container:
    id: str
    name: str  # without Docker's leading "/"
    created: dt.datetime
    image_id: str
    spec: ContainerSpec
    host: HostSpec
    path: str  # the resolved process: entrypoint + cmd
    args: list[str]
    runtime: str
    state: ContainerState = attrs.field(factory=ContainerState)
    mounts: list[MountPoint] = attrs.field(factory=list)
    networking: ContainerNetworking | None = None
    links: list[Link] = attrs.field(factory=list)  # legacy links, resolved at create
    #: a build's RUN container, marked when created (so durably): the build that owns it
    #: dies with its moord, so start-up removes such a container with all it holds
    build_step: bool = False

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def log_fields(self, event: str = "") -> dict[str, str]:
        """`extra=` for a log call about this container: the journal indexes these
        (CONTAINER_ID, CONTAINER_NAME, EVENT; engine/systemd/journal.py)."""
        fields = {"container_id": self.id, "container_name": self.name}
        if event:
            fields["event"] = event
        return fields
