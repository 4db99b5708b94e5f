"""`RUN --mount=` values: CSV fields, checked before expansion as Docker checks them."""

from __future__ import annotations

import csv

from engine.dockerfile.errors import _go_quote, _Refused
from engine.dockerfile.records import RunMount

_MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_MOUNT_KEYS = frozenset(
    {"type", "from", "source", "src", "target", "dst", "destination", "readonly", "ro", "readwrite", "rw"}
    | {"id", "sharing", "required", "size", "mode", "uid", "gid", "env"}
)


def _parse_mount(spec: str) -> RunMount:
    """One `--mount` value: CSV fields, checked the way Docker checks them before expansion."""
    try:
        fields = next(csv.reader([spec]), [])
    except csv.Error as err:
        raise _Refused(f"failed to parse csv mounts: {err}") from None
    mount_type = "bind"
    target = source = from_ = None
    readonly: bool | None = None
    options: dict[str, str] = {}
    for field in fields:
        key, has_value, value = field.partition("=")
        key = key.lower()
        if not has_value:
            if key in ("readonly", "ro", "readwrite", "rw"):
                readonly = key in ("readonly", "ro")
            elif key == "required":
                options["required"] = "true"
            else:
                raise _Refused(f"invalid field '{field}' must be a key=value pair")
            continue
        if key not in _MOUNT_KEYS:
            raise _Refused(f"unexpected key '{key}' in '{field}'")
        if key == "type":
            if value.lower() not in _MOUNT_TYPES:
                raise _Refused(f"unsupported mount type {_go_quote(value)}")
            mount_type = value.lower()
        elif key == "from":
            if "$" in value[:-1]:
                raise _Refused("'from' doesn't support variable expansion, define alias stage instead")
            from_ = value
        elif key in ("source", "src"):
            source = value
        elif key in ("target", "dst", "destination"):
            target = value
        elif key in ("readonly", "ro", "readwrite", "rw"):
            flag = value.lower() in ("1", "t", "true")
            if value.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise _Refused(f"invalid value for {key}: {value}")
            readonly = flag if key in ("readonly", "ro") else not flag
        else:
            options[key] = value
    return RunMount(
        type=mount_type,
        target=target,
        source=source,
        from_=from_,
        readonly=readonly,
        options=options,
        raw=spec,
    )
