"""The restart back-off flags of `moor run/create` (--restart-delay-initial …): each one
is written as its `moorage.restart.*` label, the one way the API takes them, so the docker
CLI and compose can set the same thing with `--label`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from engine.cli.options import OptionError
from engine.containers.restart_labels import (
    DELAY_INITIAL_LABEL,
    DELAY_MAX_LABEL,
    JITTER_LABEL,
    MAX_QUICK_FAILURES_LABEL,
    RESET_AFTER_LABEL,
    parse_restart_labels,
)
from engine.errors import InvalidParameter

#: click's parameter name → the label it sets
FLAG_LABELS = {
    "restart_delay_initial": DELAY_INITIAL_LABEL,
    "restart_delay_max": DELAY_MAX_LABEL,
    "restart_reset_after": RESET_AFTER_LABEL,
    "restart_jitter": JITTER_LABEL,
    "restart_max_quick_failures": MAX_QUICK_FAILURES_LABEL,
}


def click_options() -> list[Any]:
    """The flags, as click decorators (added to run and create)."""
    return [
        click.option("--restart-delay-initial", metavar="DURATION",
                     help="First delay before the restart policy restarts it (daemon's: 100ms)"),
        click.option("--restart-delay-max", metavar="DURATION",
                     help="The restart delay doubles up to this (daemon's: 1m)"),
        click.option("--restart-jitter", metavar="FRACTION",
                     help="Shorten each restart delay by a random share up to this (0.2 or 20%)"),
        click.option("--restart-max-quick-failures", metavar="INT",
                     help="Stop restarting after this many quick failures in a row (0: never)"),
        click.option("--restart-reset-after", metavar="DURATION",
                     help="A run this long resets the restart delay (daemon's: 10s)"),
    ]


def restart_labels(params: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, str]:
    """`labels` with the flags given written over them, checked as moord will check them."""
    merged = dict(labels)
    for param, label in FLAG_LABELS.items():
        value = params.get(param)
        if value is not None:
            merged[label] = str(value)
    try:
        parse_restart_labels(merged)
    except InvalidParameter as exc:
        flagged = {label: "--" + param.replace("_", "-") for param, label in FLAG_LABELS.items()}
        message = exc.message
        for label, flag in flagged.items():
            message = message.replace(f"label {label}=", f"{flag} value ")
        raise OptionError(message) from None
    return merged
