"""`--network container:<name|id>`: joining another container's network namespace.

This is how sidecars share `localhost` with their main container, and how Nomad's docker
driver and cri-dockerd make a pod around a pause container. As Docker does it:

- create: the other container is named by ID from then on (a rename doesn't break the
  sharing); one that does not exist yet is accepted, and refused at start;
- start: the other container must exist, be another one, and be running (or paused);
  the container joins its namespace, takes its hostname and domain name, and sees its
  /etc/hostname, /etc/hosts and /etc/resolv.conf (the same files: edits show in both);
  it gets no address, port, endpoint or DNS name of its own;
- when the other container stops, its interfaces leave the namespace (only `lo` is left
  to this one); when it starts again it has a new namespace, which this container joins
  only at its own next start. Nothing here restarts it.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from engine.containers.layout import ContainerPaths
from engine.containers.model import Container
from engine.errors import Conflict, NotFound, SystemFailure

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager

PREFIX = "container:"


def shared_with(c: Container) -> str:
    """The container `c` shares the network namespace of (as its record names it), or ""."""
    mode = c.host.network_mode
    return mode.removeprefix(PREFIX) if mode.startswith(PREFIX) else ""


def normalised_mode(m: ContainerManager, network_mode: str) -> str:
    """`container:<name>` as `container:<full ID>` when that container exists (Docker
    does the same); any other mode unchanged."""
    if not network_mode.startswith(PREFIX):
        return network_mode
    try:
        return PREFIX + m.table.lookup(network_mode.removeprefix(PREFIX)).id
    except NotFound:
        return network_mode


def owner_at_start(m: ContainerManager, c: Container) -> Container | None:
    """The running container whose namespace `c` joins (None unless `container:` mode);
    Docker's refusals otherwise."""
    ref = shared_with(c)
    if not ref:
        return None
    try:
        owner = m.table.lookup(ref)
    except NotFound as exc:
        raise SystemFailure(f"joining network namespace of container: {exc.message}") from None
    if owner.id == c.id:
        raise SystemFailure("cannot join own network namespace")
    if not owner.state.is_live:
        raise Conflict(f"cannot join network namespace of a non running container: container "
                       f"{owner.name} is {owner.state.status.value}")
    return owner


def take_names(m: ContainerManager, c: Container, owner: Container) -> None:
    """`c` gets the hostname and domain name of the container it joins (kept in its record
    as Docker keeps them); a host-mode owner's hostname is the host's."""
    host_mode = m.networking_of(owner).mode == "host"
    c.spec.hostname = socket.gethostname() if host_mode else owner.spec.hostname
    c.spec.domainname = owner.spec.domainname


def etc_paths(m: ContainerManager, c: Container) -> ContainerPaths:
    """Where `c`'s /etc/hostname, /etc/hosts and /etc/resolv.conf are: the files of the
    container whose namespace it joins (while that one exists), else its own."""
    ref = shared_with(c)
    if ref:
        try:
            return m.paths(m.table.lookup(ref))
        except NotFound:
            pass
    return m.paths(c)


__all__ = ["etc_paths", "normalised_mode", "owner_at_start", "shared_with", "take_names"]
