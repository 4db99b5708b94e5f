"""The alert settings a container carries as labels, and the check of a webhook URL.

Pure (stdlib only): moord checks them at create, moor reads the names for its flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

NOTIFY_URL_LABEL = "moorage.notify-url"
NOTIFY_ON_LABEL = "moorage.notify-on"

UNHEALTHY = "unhealthy"
OOM = "oom"
DIE = "die"
RESTART_LOOP = "restart-loop"
#: Every kind of alert, in the order the docs list them.
ALERT_KINDS = (UNHEALTHY, OOM, DIE, RESTART_LOOP)
#: `moorage.notify-on=none` turns a container's alerts off.
NO_KINDS = "none"


def check_url(url: str, what: str = "notify-url") -> str:
    """`url` if it is an absolute http or https URL with a host; ValueError saying why not."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"invalid {what} {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"invalid {what} {url!r}: want an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"invalid {what} {url!r}: the URL has no host")
    if any(ch.isspace() for ch in url):
        raise ValueError(f"invalid {what} {url!r}: the URL contains white space")
    return url


def parse_kinds(value: str, what: str = NOTIFY_ON_LABEL) -> frozenset[str]:
    """`unhealthy,oom` → those kinds; `none` → no kind; ValueError naming an unknown one."""
    names = [part.strip() for part in value.split(",") if part.strip()]
    if names == [NO_KINDS]:
        return frozenset()
    unknown = [n for n in names if n not in ALERT_KINDS]
    if unknown or not names:
        raise ValueError(f"invalid {what} {value!r}: a comma-separated list of "
                         f"{', '.join(ALERT_KINDS)}, or {NO_KINDS}")
    return frozenset(names)


def check_labels(labels: Mapping[str, str]) -> None:
    """Refuse (ValueError) alert labels moord could not act on, at create."""
    url = labels.get(NOTIFY_URL_LABEL)
    if url is not None:
        check_url(url, NOTIFY_URL_LABEL)
    kinds = labels.get(NOTIFY_ON_LABEL)
    if kinds is not None:
        parse_kinds(kinds)


def wanted_kinds(labels: Mapping[str, str]) -> frozenset[str]:
    """The kinds a container's alerts are sent for (all unless its label narrows them)."""
    value = labels.get(NOTIFY_ON_LABEL)
    if value is None:
        return frozenset(ALERT_KINDS)
    try:
        return parse_kinds(value)
    except ValueError:
        return frozenset(ALERT_KINDS)  # a record older than the check: alert rather than not
