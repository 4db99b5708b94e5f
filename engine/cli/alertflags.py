"""`moor run/create --notify-url URL --notify-on KINDS`: the container's alert labels
(docs/supervision.md, "Alerts"), checked here as moord checks them at create."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from engine.alerts.labels import ALERT_KINDS, NOTIFY_ON_LABEL, NOTIFY_URL_LABEL, check_url, parse_kinds
from engine.cli.options import OptionError


def click_options() -> list[Any]:
    """The flags, as click decorators (added to run and create)."""
    return [
        click.option("--notify-on", default=None, metavar="LIST",
                     help=f"Which alerts this container sends: {','.join(ALERT_KINDS)} "
                          "(all by default) or none"),
        click.option("--notify-url", default=None, metavar="URL",
                     help="Also POST this container's alerts to this http(s) URL"),
    ]


def alert_labels(params: Mapping[str, Any]) -> dict[str, str]:
    """The labels the flags stand for (none for a flag not given)."""
    labels: dict[str, str] = {}
    try:
        if params.get("notify_url") is not None:
            labels[NOTIFY_URL_LABEL] = check_url(params["notify_url"], "--notify-url")
        if params.get("notify_on") is not None:
            parse_kinds(params["notify_on"], "--notify-on")
            labels[NOTIFY_ON_LABEL] = params["notify_on"]
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    return labels
