"""`moor run --health-http :8080/healthz` and `--health-tcp :5432`: engine-run probes.

They become moorage's probe labels (`engine.containers.probelabels`), which is how the
docker CLI and compose ask for the same thing; with one of them, the `--health-interval`,
`--health-timeout`, `--health-retries`, `--health-start-period` and
`--health-start-interval` flags become the probe's timing labels instead of a Docker
Healthcheck. Checked here as moord checks them, so a bad value is named by its flag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.cli.options import OptionError
from engine.containers.probelabels import (
    HTTP_LABEL,
    INTERVAL_LABEL,
    RETRIES_LABEL,
    START_INTERVAL_LABEL,
    START_PERIOD_LABEL,
    TCP_LABEL,
    TIMEOUT_LABEL,
    ProbeLabelError,
    probe_from_labels,
)

#: flag (click's parameter name) → the label it sets when there is a probe
FLAG_LABELS = {
    "health_http": HTTP_LABEL,
    "health_tcp": TCP_LABEL,
    "health_interval": INTERVAL_LABEL,
    "health_timeout": TIMEOUT_LABEL,
    "health_retries": RETRIES_LABEL,
    "health_start_period": START_PERIOD_LABEL,
    "health_start_interval": START_INTERVAL_LABEL,
}


def _flag(param: str) -> str:
    return "--" + param.replace("_", "-")


def probe_labels(params: Mapping[str, Any]) -> dict[str, str]:
    """The probe labels that `run`/`create` flags ask for; {} without --health-http/-tcp."""
    if not params.get("health_http") and not params.get("health_tcp"):
        return {}
    if params.get("health_http") and params.get("health_tcp"):
        raise OptionError("conflicting options: --health-http and --health-tcp "
                          "(a container has one probe)")
    if params.get("health_cmd"):
        raise OptionError("conflicting options: --health-cmd and --health-http/--health-tcp "
                          "(a container has one health check)")
    if params.get("no_healthcheck"):
        raise OptionError("--no-healthcheck conflicts with --health-http and --health-tcp")
    labels = {label: str(params[param]) for param, label in FLAG_LABELS.items()
              if params.get(param) not in (None, "")}
    try:
        probe_from_labels(labels)
    except ProbeLabelError as exc:
        param = next((p for p, label in FLAG_LABELS.items() if label == exc.label), "")
        if not param:
            raise OptionError(exc.message) from None
        raise OptionError(f'invalid argument "{params[param]}" for "{_flag(param)}" flag: '
                          f"{exc.why}") from None
    return labels
