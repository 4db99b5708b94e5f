"""OCI image config JSON <-> `engine.images.model` records.

The config blob is the stored truth about an image (its sha256 is the image ID); the
records are what the rest of the engine reads. Parsing is lenient about what other
tools write (missing keys, nulls) and strict only where a wrong value would run the
wrong thing (types of Cmd/Entrypoint/Env, the layer list).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from engine.errors import InvalidParameter
from engine.images.model import Healthcheck, HistoryEntry, Image, ImageConfig
from engine.jsondoc import load_object

UTC = dt.UTC
#: Go's zero time, what Docker prints for a missing timestamp.
ZERO_TIME = dt.datetime(1, 1, 1, tzinfo=UTC)


# timestamps -------------------------------------------------------------------


def format_time(when: dt.datetime | None) -> str:
    """RFC 3339 with trailing zeros of the fraction dropped, as Go's RFC3339Nano prints it."""
    if when is None:
        when = ZERO_TIME
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    # not strftime("%Y"): glibc writes year 1 (Go's zero time) as "1", which Go can't parse
    text = f"{when.year:04d}-{when:%m-%dT%H:%M:%S}"
    if when.microsecond:
        text += "." + f"{when.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 timestamp (any fraction length, `Z` or offset) → aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python keeps microseconds; Go writes up to nanoseconds
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{(frac + '000000')[:6]}{tail}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def unix_seconds(when: dt.datetime | None) -> int:
    return int((when or ZERO_TIME).timestamp())


# parsing ----------------------------------------------------------------------


def _str_list(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):  # some writers store a shell string; Docker reads it as one arg
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"invalid image config: {what} must be a list of strings")
    return list(value)


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid image config: {what} must be an object")
    return {str(k): str(v) for k, v in value.items()}


def _key_set(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid image config: {what} must be an object")
    return [str(k) for k in value]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _healthcheck(value: Any) -> Healthcheck | None:
    if not isinstance(value, dict):
        return None
    test = _str_list(value.get("Test"), "Healthcheck.Test") or []
    return Healthcheck(
        test=tuple(test),
        interval=_int(value.get("Interval")),
        timeout=_int(value.get("Timeout")),
        start_period=_int(value.get("StartPeriod")),
        start_interval=_int(value.get("StartInterval")),
        retries=_int(value.get("Retries")),
    )


def config_from_json(raw: Any) -> ImageConfig:
    """The `config` object of an image config → ImageConfig."""
    if raw is None:
        return ImageConfig()
    if not isinstance(raw, dict):
        raise InvalidParameter("invalid image config: config must be an object")
    return ImageConfig(
        user=_str(raw.get("User")),
        env=_str_list(raw.get("Env"), "Env") or [],
        cmd=_str_list(raw.get("Cmd"), "Cmd"),
        entrypoint=_str_list(raw.get("Entrypoint"), "Entrypoint"),
        working_dir=_str(raw.get("WorkingDir")),
        labels=_str_map(raw.get("Labels"), "Labels"),
        exposed_ports=_key_set(raw.get("ExposedPorts"), "ExposedPorts"),
        volumes=_key_set(raw.get("Volumes"), "Volumes"),
        stop_signal=_str(raw.get("StopSignal")),
        healthcheck=_healthcheck(raw.get("Healthcheck")),
        shell=_str_list(raw.get("Shell"), "Shell"),
        on_build=_str_list(raw.get("OnBuild"), "OnBuild") or [],
        args_escaped=bool(raw.get("ArgsEscaped", False)),
    )


def _history(raw: Any) -> list[HistoryEntry]:
    if not isinstance(raw, list):
        return []
    out = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        out.append(
            HistoryEntry(
                created=parse_time(item.get("created")),
                created_by=_str(item.get("created_by")),
                comment=_str(item.get("comment")),
                empty_layer=bool(item.get("empty_layer", False)),
                author=_str(item.get("author")),
            )
        )
    return out


def image_from_config(data: bytes, *, image_id: str | None = None) -> Image:
    """Parse a config blob. The ID is its sha256 unless the caller already knows it."""
    raw = load_object(data, "invalid image config")
    rootfs = raw.get("rootfs")
    if not isinstance(rootfs, dict):
        raise InvalidParameter("invalid image config: rootfs is missing")
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list) or not all(
        isinstance(d, str) and d.startswith("sha256:") and len(d) == 71 for d in diff_ids
    ):
        raise InvalidParameter("invalid image config: rootfs.diff_ids must be sha256 digests")
    if image_id is None:
        image_id = "sha256:" + hashlib.sha256(data).hexdigest()
    return Image(
        id=image_id,
        config=config_from_json(raw.get("config")),
        diff_ids=list(diff_ids),
        created=parse_time(raw.get("created")) or ZERO_TIME,
        architecture=_str(raw.get("architecture")),
        os=_str(raw.get("os")),
        variant=_str(raw.get("variant")),
        author=_str(raw.get("author")),
        comment=_str(raw.get("comment")),
        parent=_str(raw.get("parent")),
        history=_history(raw.get("history")),
    )


# writing ----------------------------------------------------------------------


def healthcheck_to_json(hc: Healthcheck) -> dict[str, Any]:
    out: dict[str, Any] = {"Test": list(hc.test)}
    for key, value in (
        ("Interval", hc.interval),
        ("Timeout", hc.timeout),
        ("StartPeriod", hc.start_period),
        ("StartInterval", hc.start_interval),
        ("Retries", hc.retries),
    ):
        if value:
            out[key] = value
    return out


def config_to_json(config: ImageConfig) -> dict[str, Any]:
    """ImageConfig → the OCI `config` object (empty fields left out, as OCI writers do)."""
    out: dict[str, Any] = {}
    if config.user:
        out["User"] = config.user
    if config.exposed_ports:
        out["ExposedPorts"] = {p: {} for p in config.exposed_ports}
    if config.env:
        out["Env"] = list(config.env)
    if config.entrypoint is not None:
        out["Entrypoint"] = list(config.entrypoint)
    if config.cmd is not None:
        out["Cmd"] = list(config.cmd)
    if config.volumes:
        out["Volumes"] = {v: {} for v in config.volumes}
    if config.working_dir:
        out["WorkingDir"] = config.working_dir
    if config.labels:
        out["Labels"] = dict(config.labels)
    if config.stop_signal:
        out["StopSignal"] = config.stop_signal
    if config.args_escaped:
        out["ArgsEscaped"] = True
    if config.healthcheck is not None:
        out["Healthcheck"] = healthcheck_to_json(config.healthcheck)
    if config.on_build:
        out["OnBuild"] = list(config.on_build)
    if config.shell is not None:
        out["Shell"] = list(config.shell)
    return out


def history_to_json(entry: HistoryEntry) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if entry.created is not None:
        out["created"] = format_time(entry.created)
    if entry.created_by:
        out["created_by"] = entry.created_by
    if entry.author:
        out["author"] = entry.author
    if entry.comment:
        out["comment"] = entry.comment
    if entry.empty_layer:
        out["empty_layer"] = True
    return out


def image_to_config(image: Image) -> bytes:
    """Serialise the config blob for `image` (its `id` is ignored: it is the blob's hash).

    Key order is fixed, so the same record always gives the same bytes and ID.
    """
    doc: dict[str, Any] = {
        "architecture": image.architecture,
    }
    if image.author:
        doc["author"] = image.author
    if image.comment:
        doc["comment"] = image.comment
    doc["config"] = config_to_json(image.config)
    doc["created"] = format_time(image.created)
    doc["history"] = [history_to_json(h) for h in image.history]
    doc["os"] = image.os
    if image.parent:
        doc["parent"] = image.parent
    doc["rootfs"] = {"type": "layers", "diff_ids": list(image.diff_ids)}
    if image.variant:
        doc["variant"] = image.variant
    return json.dumps(doc, separators=(",", ":")).encode()


def config_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


__all__ = [
    "ZERO_TIME",
    "config_digest",
    "config_from_json",
    "config_to_json",
    "format_time",
    "image_from_config",
    "image_to_config",
    "parse_time",
    "unix_seconds",
]
