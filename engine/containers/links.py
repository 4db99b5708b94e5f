"""Legacy links on the default bridge (`--link name:alias`), as Docker keeps them.

- create: each `HostConfig.Links` entry is resolved to the container it names (following
  `container:` modes to the namespace's owner) and kept in the record; one that names no
  container is refused. On a user network Docker ignores `HostConfig.Links` (the CLI
  sends the links as the endpoint's `Links`, which the network's DNS answers instead).
- start, when the container is on the default bridge: every linked container must be on
  it too and running; the container gets Docker's `ALIAS_…` variables, an /etc/hosts
  line per link and the alias in its DNS answers. A linked container that starts again
  later has its line rewritten in the running containers that link to it.
- a link is known as `/parent/alias`: `ps` lists it among the linked container's names,
  inspect shows `/child:/parent/alias` in `HostConfig.Links`, and `DELETE
  /containers/{parent/alias}?link=1` removes it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import attrs
import trio

from engine.containers.model import Container, HostSpec, Link
from engine.errors import EngineError, InvalidParameter, NotFound, SystemFailure
from engine.networks.linkspec import LinkFormatError, is_user_defined, link_env, link_name, parse_link
from engine.networks.model import LinkedContainer

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager

log = logging.getLogger(__name__)


def _linkable(m: ContainerManager, ref: str) -> Container:
    try:
        return m.table.lookup(ref)
    except NotFound as exc:
        # a 400, not a 404: the client would take a 404 for a missing image and pull
        raise InvalidParameter(f"could not get container for {ref}: {exc.message}") from None


def resolve(m: ContainerManager, host: HostSpec) -> list[Link]:
    """`HostConfig.Links` of a create request as links to existing containers."""
    if is_user_defined(host.network_mode):
        return []
    links: list[Link] = []
    for value in host.links:
        try:
            name, alias = parse_link(value)
        except LinkFormatError as exc:
            raise InvalidParameter(str(exc)) from None
        child = _linkable(m, name)
        seen = {child.id}
        while child.host.network_mode.startswith("container:"):
            child = _linkable(m, child.host.network_mode.removeprefix("container:"))
            if child.id in seen:
                break
            seen.add(child.id)
        if child.host.network_mode == "host":
            raise InvalidParameter("conflicting options: host type networking can't be used "
                                   "with links. This would result in undefined behavior")
        if any(link.alias == alias for link in links):
            log.warning("a second link named %s is ignored", alias)
            continue
        links.append(Link(child.id, alias, child.name))
    return links


def _bridge_id(m: ContainerManager) -> str:
    assert m.networks is not None
    return m.networks.catalog.default_bridge.id


def _on_bridge(m: ContainerManager, c: Container) -> bool:
    return _bridge_id(m) in m.networking_of(c).networks


def _bridge_address(m: ContainerManager, c: Container) -> str:
    assert m.networks is not None
    attachment = m.networks.attachment(c.id)
    bridge = _bridge_id(m)
    for ep in attachment.endpoints if attachment is not None else ():
        if ep.network_id == bridge and ep.ip:
            return ep.ip
    return ""


def at_start(m: ContainerManager, c: Container) -> tuple[tuple[LinkedContainer, ...], list[str]]:
    """The containers `c` links to (for its /etc/hosts and DNS) and the variables it gets;
    Docker's refusals when one is off the default bridge or not running."""
    if not c.links or m.networks is None or not _on_bridge(m, c):
        return (), []
    for link in c.links:
        child = m.table.by_id.get(link.container_id)
        if child is not None and not _on_bridge(m, child):
            raise SystemFailure(
                f"Cannot link to /{child.name}, as it does not belong to the default network")
    linked: list[LinkedContainer] = []
    env: list[str] = []
    for link in c.links:
        child = m.table.by_id.get(link.container_id)
        name = link_name(c.name, link.alias)
        if child is None or not child.state.is_live:
            shown = child.name if child is not None else link.name
            raise SystemFailure(f"Cannot link to a non running container: /{shown} AS {name}")
        address = _bridge_address(m, child)
        if not address:
            raise SystemFailure(f"container {child.id} not attached to default bridge network")
        env += link_env(name, address, child.spec.env, child.spec.exposed_ports)
        linked.append(LinkedContainer(link.alias, child.id, child.name, child.spec.hostname))
    return tuple(linked), env


def _running_links(m: ContainerManager, c: Container) -> tuple[LinkedContainer, ...]:
    """`c`'s links to containers that run now (a refresh skips the others, never fails)."""
    linked = []
    for link in c.links:
        child = m.table.by_id.get(link.container_id)
        if child is not None and child.state.is_live:
            linked.append(LinkedContainer(link.alias, child.id, child.name, child.spec.hostname))
    return tuple(linked)


async def refresh(m: ContainerManager, c: Container) -> None:
    """A running container's links changed (one removed, a linked container started
    again): its DNS aliases and its /etc/hosts follow. Failures are logged."""
    if m.networks is None or not c.state.is_live or not _on_bridge(m, c):
        return
    info = attrs.evolve(m.info_of(c), links=_running_links(m, c))
    try:
        text = await m.networks.refresh_links(info)
        if text is not None:
            await trio.to_thread.run_sync(m.paths(c).hosts_file.write_text, text)
    except (OSError, EngineError) as exc:
        log.warning("%s: updating its links: %s", c.short_id, exc)


async def refresh_parents(m: ContainerManager, child: Container) -> None:
    """`child` (re)started: the running containers linking to it get its new address."""
    for parent in m.records():
        if parent.id != child.id and any(k.container_id == child.id for k in parent.links):
            await refresh(m, parent)


async def remove(m: ContainerManager, ref: str) -> None:
    """`DELETE /containers/{parent/alias}?link=1`: the parent forgets the link (Docker's
    words when `ref` names a container rather than a link)."""
    name = ref if ref.startswith("/") else "/" + ref
    m.get(ref)  # 404 for neither a container nor a link
    parent_name, _, alias = name[1:].rpartition("/")
    if not parent_name:
        raise SystemFailure("Conflict, cannot remove the default link name of the container")
    parent_id = m.table.names.get(parent_name)
    parent = m.table.by_id.get(parent_id) if parent_id else None
    if parent is None:
        raise SystemFailure(f"Cannot get parent /{parent_name} for link name {name}")
    async with m.live_of(parent).op_lock:
        parent.links = [link for link in parent.links if link.alias != alias]
        await m.save(parent)
    await refresh(m, parent)


def shown(m: ContainerManager, c: Container) -> list[str] | None:
    """`HostConfig.Links` as inspect shows it: `/child:/parent/alias` (None without)."""
    out = []
    for link in c.links:
        child = m.table.by_id.get(link.container_id)
        out.append(f"/{child.name if child else link.name}:{link_name(c.name, link.alias)}")
    return out or None


def names_by_container(m: ContainerManager) -> dict[str, list[str]]:
    """Every link's `/parent/alias` name, by the ID of the container it leads to (`ps`
    lists them among that container's names)."""
    names: dict[str, list[str]] = {}
    for parent in m.records():
        for link in parent.links:
            names.setdefault(link.container_id, []).append(link_name(parent.name, link.alias))
    return names


__all__ = ["at_start", "names_by_container", "refresh", "refresh_parents", "remove", "resolve",
           "shown"]
