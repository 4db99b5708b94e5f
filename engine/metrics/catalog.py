"""The metrics moord exposes: dockerd's names where dockerd has one, `moorage_` for its own.

dockerd's come from moby's go-metrics namespace `engine_daemon` (a counter gets
`_total`, a timer is a histogram in seconds with Prometheus' default buckets, a gauge
its unit as a suffix). docs/metrics.md lists every family and what it counts.

One `DaemonMetrics` per process (`METRICS`, owned by the daemon): the engine's layers
record into it directly, one call at each place where something happens, so a hook
stays one line and a unit test reads the same object.
"""

from __future__ import annotations

import attrs

from engine.metrics.registry import Counter, Gauge, Histogram, Registry

#: dockerd declares these container actions at start-up, so their series always exist.
CONTAINER_ACTIONS = ("start", "changes", "commit", "create", "delete")
#: dockerd's `engine_daemon_container_states_containers` has exactly these three.
CONTAINER_STATES = ("running", "paused", "stopped")
#: API latency buckets: most calls answer in milliseconds; a pull or a stop takes seconds.
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Why moord closes an API connection on its own, and which cap refuses one
#: (engine/api/policing.py): declared at start-up, so every series exists from zero.
API_CUT_REASONS = ("header-timeout", "idle-timeout", "body-stalled")
API_REFUSAL_CAPS = ("process", "user")
#: The restart policies that restart (their breaker series exist from zero).
RESTARTING_POLICIES = ("always", "unless-stopped", "on-failure")


def _registry() -> Registry:
    return Registry()


@attrs.define(eq=False)
class DaemonMetrics:
    registry: Registry = attrs.field(factory=_registry)

    # dockerd's -----------------------------------------------------------------
    container_actions: Histogram = attrs.field(init=False)
    network_actions: Histogram = attrs.field(init=False)
    container_states: Gauge = attrs.field(init=False)
    engine_info: Gauge = attrs.field(init=False)
    engine_cpus: Gauge = attrs.field(init=False)
    engine_memory: Gauge = attrs.field(init=False)
    events: Counter = attrs.field(init=False)
    event_subscribers: Gauge = attrs.field(init=False)
    health_checks: Counter = attrs.field(init=False)
    health_checks_failed: Counter = attrs.field(init=False)

    # moorage's own -------------------------------------------------------------
    restarts: Counter = attrs.field(init=False)
    restart_loops_broken: Counter = attrs.field(init=False)
    health_failures: Counter = attrs.field(init=False)
    health_actions: Counter = attrs.field(init=False)
    log_lines_shipped: Counter = attrs.field(init=False)
    log_lines_dropped: Counter = attrs.field(init=False)
    log_rotations: Counter = attrs.field(init=False)
    log_gaps: Counter = attrs.field(init=False)
    log_gap_seconds: Counter = attrs.field(init=False)
    adoption_seconds: Gauge = attrs.field(init=False)
    recovered: Counter = attrs.field(init=False)
    api_requests: Histogram = attrs.field(init=False)
    api_connections: Gauge = attrs.field(init=False)
    api_connections_cut: Counter = attrs.field(init=False)
    api_connections_refused: Counter = attrs.field(init=False)
    alerts_sent: Counter = attrs.field(init=False)
    alert_attempts_failed: Counter = attrs.field(init=False)
    alerts_dropped: Counter = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        add = self.registry.add
        self.container_actions = add(Histogram(
            "engine_daemon_container_actions_seconds",
            "The number of seconds it takes to process each container action", ("action",)))
        for action in CONTAINER_ACTIONS:
            self.container_actions.declare(action=action)
        self.network_actions = add(Histogram(
            "engine_daemon_network_actions_seconds",
            "The number of seconds it takes to process each network action", ("action",)))
        self.container_states = add(Gauge(
            "engine_daemon_container_states_containers",
            "The count of containers in various states", ("state",)))
        for state in CONTAINER_STATES:
            self.container_states.set(0, state=state)
        self.engine_info = add(Gauge(
            "engine_daemon_engine_info",
            "The information related to the engine and the OS it is running on",
            ("version", "commit", "architecture", "graphdriver", "kernel", "os", "os_type",
             "os_version", "daemon_id")))
        self.engine_cpus = add(Gauge(
            "engine_daemon_engine_cpus_cpus",
            "The number of cpus that the host system of the engine has"))
        self.engine_memory = add(Gauge(
            "engine_daemon_engine_memory_bytes",
            "The number of bytes of memory that the host system of the engine has"))
        self.events = add(Counter("engine_daemon_events_total", "The number of events logged"))
        self.events.declare()
        self.event_subscribers = add(Gauge(
            "engine_daemon_events_subscribers_total",
            "The number of current subscribers to events"))
        self.event_subscribers.set(0)
        self.health_checks = add(Counter(
            "engine_daemon_health_checks_total", "The total number of health checks"))
        self.health_checks.declare()
        self.health_checks_failed = add(Counter(
            "engine_daemon_health_checks_failed_total",
            "The total number of failed health checks (probes that could not be run)"))
        self.health_checks_failed.declare()

        self.restarts = add(Counter(
            "moorage_container_restarts_total",
            "Containers restarted by their restart policy, by policy and by the reason of the "
            "stop that preceded the restart", ("policy", "reason")))
        self.restart_loops_broken = add(Counter(
            "moorage_restart_loops_broken_total",
            "Restart loops the breaker ended (moorage.restart.max-quick-failures quick failures "
            "in a row), by restart policy", ("policy",)))
        for name in RESTARTING_POLICIES:
            self.restart_loops_broken.declare(policy=name)
        self.health_failures = add(Counter(
            "moorage_health_check_failures_total",
            "Health probes that failed: a non-zero exit, a timeout, or a probe that could not run"))
        self.health_failures.declare()
        self.health_actions = add(Counter(
            "moorage_health_unhealthy_total",
            "Containers that turned unhealthy, by the action --health-on-failure took",
            ("action",)))
        self.log_lines_shipped = add(Counter(
            "moorage_log_lines_shipped_total",
            "Log lines moord read from a container's log file and handed to its log driver",
            ("container", "driver")))
        self.log_lines_dropped = add(Counter(
            "moorage_log_lines_dropped_total",
            "Log lines moord read for a log driver that failed to take them (not retried)",
            ("container", "driver")))
        self.log_rotations = add(Counter(
            "moorage_log_rotations_total",
            "Times moord rotated a container's log file", ("container",)))
        self.log_gaps = add(Counter(
            "moorage_log_gaps_total",
            "Times a container's output was lost because the disk holding its log was full "
            "(counted when writing resumes)", ("container",)))
        self.log_gap_seconds = add(Counter(
            "moorage_log_gap_seconds_total",
            "Seconds during which a container's output was lost to a full disk (between "
            "the last record written before a gap and the first one after it)",
            ("container",)))
        self.adoption_seconds = add(Gauge(
            "moorage_adoption_duration_seconds",
            "How long this moord's start-up took to reconcile and re-adopt the containers"))
        self.recovered = add(Counter(
            "moorage_recovered_containers_total",
            "Containers found at this moord's start-up, by what was done with them",
            ("outcome",)))
        self.api_requests = add(Histogram(
            "moorage_api_request_duration_seconds",
            "Engine API requests: seconds until the response (or a stream's head) was ready, "
            "by method, route template and status", ("method", "route", "status"),
            buckets=API_BUCKETS))
        self.api_connections = add(Gauge(
            "moorage_api_connections",
            "Engine API connections open now (admitted ones: a refused connection is not "
            "counted)"))
        self.api_connections.set(0)
        self.api_connections_cut = add(Counter(
            "moorage_api_connections_cut_total",
            "Engine API connections moord closed because the client kept it waiting, by "
            "which timeout ran out", ("reason",)))
        for reason in API_CUT_REASONS:
            self.api_connections_cut.declare(reason=reason)
        self.api_connections_refused = add(Counter(
            "moorage_api_connections_refused_total",
            "Engine API connections turned away (429) because their client held too many, by "
            "the cap that was reached", ("cap",)))
        for cap in API_REFUSAL_CAPS:
            self.api_connections_refused.declare(cap=cap)
        self.alerts_sent = add(Counter(
            "moorage_alerts_sent_total",
            "Alert webhooks delivered (answered with a 2xx), by kind", ("kind",)))
        self.alert_attempts_failed = add(Counter(
            "moorage_alert_attempts_failed_total",
            "Attempts to deliver an alert that failed (no answer in time, a refused "
            "connection, a status other than 2xx), by kind; each is retried until its deadline",
            ("kind",)))
        self.alerts_dropped = add(Counter(
            "moorage_alerts_dropped_total",
            "Alerts given up: pushed out of a full queue (queue-full) or still undelivered "
            "at their deadline (expired), by kind and reason", ("kind", "reason")))

    def forget_container(self, container_id: str) -> None:
        """A removed container's series go with it (they would otherwise stay forever)."""
        self.registry.remove_where(container=container_id[:12])

    def render(self) -> str:
        return self.registry.render()


#: The daemon's metrics. Recording into it is cheap and never blocks; it is only shown
#: when `metrics-addr` is set.
METRICS = DaemonMetrics()
