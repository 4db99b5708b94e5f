"""Docker's event JSON, and its filters (type, container, event, image, label, …)."""

from __future__ import annotations

from typing import Any

from engine.errors import InvalidParameter
from engine.events import Event, EventFilter
from engine.filtering import check_filters, labels_match

FILTER_KEYS = frozenset({"type", "container", "event", "image", "label", "daemon", "network",
                         "volume", "scope", "plugin", "node", "service", "secret", "config"})
TYPES = frozenset({"container", "image", "network", "volume", "daemon", "plugin", "builder",
                   "node", "service", "secret", "config"})


def event_json(e: Event) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Type": e.type,
        "Action": e.action,
        "Actor": {"ID": e.actor_id, "Attributes": dict(e.attributes)},
        "scope": "local",
        "time": e.time_ns // 1_000_000_000,
        "timeNano": e.time_ns,
    }
    if e.type in ("container", "image"):
        # API < 1.52 also carries the legacy fields
        body["status"] = e.action
        body["id"] = e.actor_id
        if e.type == "container" and "image" in e.attributes:
            body["from"] = e.attributes["image"]
    return body


def event_filter(filters: dict[str, list[str]]) -> EventFilter:
    """Values of one key OR'd, keys AND'd, as Docker matches them."""
    check_filters(filters, FILTER_KEYS)
    for t in filters.get("type", []):
        if t not in TYPES:
            raise InvalidParameter(f"unknown event type: {t}")

    def wanted(e: Event) -> bool:
        if filters.get("type") and e.type not in filters["type"]:
            return False
        if filters.get("event") and not (e.action in filters["event"]
                                         or e.base_action in filters["event"]):
            return False
        if filters.get("container"):
            if e.type != "container":
                return False
            name = e.attributes.get("name", "")
            if not any(e.actor_id.startswith(c) or c.removeprefix("/") == name
                       for c in filters["container"]):
                return False
        if filters.get("image"):
            image = e.attributes.get("image", "") if e.type == "container" else e.actor_id
            names = {image, e.attributes.get("name", "")}
            if not any(i in names or image.startswith(i) or _base(image) == i
                       for i in filters["image"]):
                return False
        if not labels_match(e.attributes, filters):
            return False
        return not filters.get("scope") or "local" in filters["scope"]

    return wanted


def _base(image: str) -> str:
    """`busybox:latest` → `busybox`: Docker matches an image filter with or without the tag."""
    name, _, tag = image.rpartition(":")
    return name if name and "/" not in tag else image
