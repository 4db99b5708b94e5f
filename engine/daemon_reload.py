"""SIGHUP: re-read the configuration and apply what can change without a restart.

What is applied live: moord's own logging (level, target, file and its rotation), the
defaults new containers get (log driver and its rotation), the restart back-off, the
shutdown settings, the registry settings (mirrors, insecure registries), which the
next pull or push uses, and the API server's clocks and connection caps (the daemon hands
them to the server; a restart would cut the very streams they spare). Everything else
(paths, sockets, runtimes, networks, metrics) is reported as needing a restart and keeps
its running value, so a reload never leaves moord half in one configuration and half in
another.
next pull or push uses, and the alerts' `notify-url` and `notify-timeout` (alerts
already queued still go where they were going). Everything else (paths, sockets, runtimes, networks, metrics)
is reported as needing a restart and keeps its running value, so a reload never leaves
moord half in one configuration and half in another.
"""

from __future__ import annotations

import logging

import attrs

from engine.alerts.delivery import alert_retries
from engine.config import DaemonConfig, load_config
from engine.daemon_logging import configure_logging
from engine.engine import Engine

log = logging.getLogger("moord")

LOGGING = ("log_level", "log_target", "log_file", "log_file_max_size", "log_file_max_count")
RELOADABLE = (*LOGGING, "restart_delay_initial", "restart_delay_max", "restart_delay_reset",
              "shutdown_timeout", "stop_containers_on_shutdown",
              "log_driver", "log_max_size", "log_max_file",
              "registry_mirrors", "insecure_registries",
              "api_header_timeout", "api_idle_timeout", "api_body_timeout",
              "api_max_connections_per_process", "api_max_connections_per_user",
              "notify_url", "notify_timeout")


def _refusal(engine: Engine, new: DaemonConfig) -> str:
    """Why `new` can't be applied ('' when it can): what start-up would refuse too."""
    drivers = engine.containers.log_drivers
    if new.log_driver not in drivers:
        return (f"log-driver {new.log_driver!r} is not a known log driver "
                f"({', '.join(sorted(drivers))})")
    return ""


def read_config(argv: list[str] | None) -> DaemonConfig | None:
    """The configuration as the file and flags say now (None, logged, when it is invalid).
    Blocking: reads the file; run it on a worker thread."""
    try:
        return load_config(argv)
    except SystemExit as exc:
        log.error("SIGHUP: the configuration is invalid, keeping the old one: %s", exc)
        return None


def apply_config(engine: Engine, new: DaemonConfig | None) -> DaemonConfig:
    """Apply the reloadable part of `new` (on the event loop's thread); returns what runs."""
    old = engine.config
    if new is None:
        return old
    refusal = _refusal(engine, new)
    if refusal:
        log.error("SIGHUP: the configuration is invalid, keeping the old one: %s", refusal)
        return old
    changed = [f.name for f in attrs.fields(DaemonConfig)
               if getattr(new, f.name) != getattr(old, f.name)]
    applied = [n for n in changed if n in RELOADABLE]
    ignored = [n for n in changed if n not in RELOADABLE]
    kept = attrs.evolve(old, **{n: getattr(new, n) for n in applied})
    if any(n in LOGGING for n in applied):
        configure_logging(kept)
    engine.config = kept
    engine.containers.reconfigure(kept)
    if engine.registry is not None:
        engine.registry.reconfigure(kept)
    if engine.alerts is not None:
        engine.alerts.reconfigure(kept.notify_url, alert_retries(kept))
    log.info("SIGHUP: configuration reloaded (changed: %s)", ", ".join(applied) or "nothing",
             extra={"event": "reload"})
    if ignored:
        log.warning("SIGHUP: %s only change when moord restarts", ", ".join(ignored))
    engine.events.publish("daemon", "reload", engine.id, {"changed": ",".join(applied)})
    return kept
