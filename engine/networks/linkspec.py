"""Docker's legacy links (`--link name:alias`) as text: the `name:alias` form, the
variables a linking container gets, the /etc/hosts line that names the linked one, and
which network modes they apply to (on the default bridge they are links; on a user
network the docker CLI sends them as the endpoint's `Links`, aliases in its DNS).

Pure functions with no state (moor uses them for `--link` too); what a link does to
containers lives in `engine.containers.links` and `engine.networks.attachments`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from engine.networks.ports import parse_port_key

PREDEFINED_MODES = ("", "default", "bridge", "host", "none")


def is_container_mode(network_mode: str) -> bool:
    """`container:<x>` (and a bare `container`, which Docker refuses as one)."""
    return network_mode == "container" or network_mode.startswith("container:")


def is_user_defined(network_mode: str) -> bool:
    """A user network's name or ID (Docker's `IsUserDefined`: decided by the text alone)."""
    return network_mode not in PREDEFINED_MODES and not is_container_mode(network_mode)


class LinkFormatError(ValueError):
    """A `--link` value that is not `name` or `name:alias` (Docker's words)."""


def parse_link(value: str) -> tuple[str, str]:
    """`name:alias` → (name, alias); `name` alone is its own alias. The form inspect shows,
    `/name:/parent/alias`, is read back too (a HostConfig copied from an inspect)."""
    if not value:
        raise LinkFormatError("empty string specified for links")
    parts = value.split(":")
    if len(parts) > 2:
        raise LinkFormatError(f"bad format for links: {value}")
    if len(parts) == 1:
        return value, value
    name, alias = parts
    if name.startswith("/"):
        return name[1:], posixpath.basename(alias)
    return name, alias


def link_name(parent: str, alias: str) -> str:
    """The name a link is known by: `/parent/alias` (`docker rm --link` takes it)."""
    return f"/{parent}/{alias}"


def _ports(exposed: Iterable[str]) -> list[tuple[int, str]]:
    """Exposed ports as (number, protocol), TCP first, then by protocol and number."""
    ports: set[tuple[int, str]] = set()
    for key in exposed:
        try:
            start, end, proto = parse_port_key(key)
        except ValueError:
            continue
        ports.update((n, proto) for n in range(start, end + 1))
    return sorted(ports, key=lambda p: (p[1] != "tcp", p[1], p[0]))


def link_env(name: str, address: str, env: Iterable[str], exposed: Iterable[str]) -> list[str]:
    """The variables a container linked to another on the default bridge gets, in Docker's
    order: `ALIAS_PORT`, per port `ALIAS_PORT_<n>_<PROTO>` and its `_ADDR`, `_PORT`,
    `_PROTO`, `_START`/`_END` pairs for runs of consecutive ports, `ALIAS_NAME` (the link's
    `/parent/alias` name) and `ALIAS_ENV_<var>` for the linked container's variables
    (HOME and PATH left out). `address` is the linked container's address."""
    alias = posixpath.basename(name).upper().replace("-", "_")
    out: list[str] = []
    ports = _ports(exposed)
    run_start = run_end = ports[0] if ports else (0, "")
    for index, (number, proto) in enumerate(ports):
        if index == 0:
            out.append(f"{alias}_PORT={proto}://{address}:{number}")
        prefix = f"{alias}_PORT_{number}_{proto.upper()}"
        out += [f"{prefix}={proto}://{address}:{number}", f"{prefix}_ADDR={address}",
                f"{prefix}_PORT={number}", f"{prefix}_PROTO={proto}"]
        if number == run_end[0] + 1 and proto == run_end[1]:
            run_end = (number, proto)
            if index < len(ports) - 1:
                continue
        if run_end != run_start:
            first = f"{alias}_PORT_{run_start[0]}_{run_start[1].upper()}"
            out += [f"{first}_START={run_start[1]}://{address}:{run_start[0]}",
                    f"{first}_PORT_START={run_start[0]}",
                    f"{first}_END={run_end[1]}://{address}:{run_end[0]}",
                    f"{first}_PORT_END={run_end[0]}"]
        run_start = run_end = (number, proto)
    out.append(f"{alias}_NAME={name}")
    for entry in env:
        key, sep, value = entry.partition("=")
        if sep and key not in ("HOME", "PATH"):
            out.append(f"{alias}_ENV_{key}={value}")
    return out


def hosts_line(address: str, alias: str, name: str, hostname: str) -> str:
    """The linking container's /etc/hosts line for a linked one: its address, the alias,
    its hostname, and its name unless that is the alias."""
    names = [alias, hostname] if hostname else [alias]
    if name != alias:
        names.append(name)
    return f"{address}\t{' '.join(names)}\n"


__all__ = ["LinkFormatError", "hosts_line", "is_container_mode", "is_user_defined", "link_env",
           "link_name", "parse_link"]
