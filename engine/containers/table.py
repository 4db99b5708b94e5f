"""The table of containers moord knows: lookup by ID, name or prefix, name reservation,
and persistence of each record (not to be confused with `engine.registry`, which talks
to image registries)."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import trio

from engine.containers.model import Container
from engine.errors import Conflict, InvalidParameter, NotFound
from engine.ids import is_hex_prefix
from engine.store import RecordStore


@attrs.define(eq=False)
class ContainerTable:
    store: RecordStore[Container]
    by_id: dict[str, Container] = attrs.field(factory=dict)
    names: dict[str, str] = attrs.field(factory=dict)  # name -> id
    _save_locks: dict[str, trio.Lock] = attrs.field(factory=dict)

    def load(self) -> None:
        """Read every record (blocking; start-up only)."""
        for key, record in self.store.load_all().items():
            if key != record.id:
                continue
            self.by_id[record.id] = record
            self.names[record.name] = record.id

    def __iter__(self) -> Iterator[Container]:
        return iter(list(self.by_id.values()))

    def __len__(self) -> int:
        return len(self.by_id)

    def lookup(self, ref: str) -> Container:
        """Docker's order: full ID, then name (with or without `/`; a link's `parent/alias`
        leads to the linked container), then a unique ID prefix."""
        if not ref:
            raise NotFound("No such container: ")
        if ref in self.by_id:
            return self.by_id[ref]
        name = ref.removeprefix("/")
        if name in self.names:
            return self.by_id[self.names[name]]
        if "/" in name:  # a link's name, /parent/alias: the container it leads to
            linked = self._linked(name)
            if linked is not None:
                return linked
        if is_hex_prefix(ref):
            matches = [c for cid, c in self.by_id.items() if cid.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def _linked(self, name: str) -> Container | None:
        parent_name, _, alias = name.rpartition("/")
        parent = self.by_id.get(self.names.get(parent_name, ""))
        for link in parent.links if parent is not None else ():
            if link.alias == alias:
                return self.by_id.get(link.container_id)
        return None

    def reserve_name(self, name: str, container_id: str) -> None:
        holder = self.names.get(name)
        if holder is not None and holder != container_id:
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{holder}". You have to remove (or rename) that container to be able to '
                "reuse that name."
            )
        self.names[name] = container_id

    def release_name(self, name: str, container_id: str) -> None:
        if self.names.get(name) == container_id:
            del self.names[name]

    def add(self, container: Container) -> None:
        self.by_id[container.id] = container

    def discard(self, container: Container) -> None:
        self.by_id.pop(container.id, None)
        self.release_name(container.name, container.id)
        self._save_locks.pop(container.id, None)

    async def save(self, container: Container) -> None:
        """Persist the container's current state; saves of one record never reorder."""
        lock = self._save_locks.setdefault(container.id, trio.Lock())
        async with lock:
            if container.id not in self.by_id:
                return
            await self.store.save(container.id, container)

    async def forget(self, container: Container) -> None:
        await self.store.delete(container.id)
        self.discard(container)
