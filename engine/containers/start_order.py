"""The dependency graph of start order (`moorage.depends-on`): resolving, cycles, checks.

Pure: no I/O, no trio. A create is refused (400) when a dependency names no container or
when the new container would close a cycle: a name left behind by a removed container
may be taken by a new one that depends back on its dependents. A rename can still close
one later; the start-up pass (`ordered_start`) finds those and starts their members
without waiting, with a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from engine.containers.depends_labels import dependencies_of, timeout_of
from engine.containers.model import Container
from engine.errors import EngineError, InvalidParameter

#: edges: a container's ID → the IDs of the containers it depends on
Graph = Mapping[str, Sequence[str]]
#: a reference (name or ID) → the container it names (raises EngineError if none)
Lookup = Callable[[str], Container]


def resolved(lookup: Lookup, ref: str) -> Container | None:
    """The container `ref` names now, or None (removed, renamed, ambiguous)."""
    try:
        return lookup(ref)
    except EngineError:
        return None


def graph_of(containers: Iterable[Container], lookup: Lookup) -> dict[str, list[str]]:
    """Each container's resolved dependencies; what resolves to nothing is left out, as
    are labels that no longer parse (they were checked at create)."""
    edges: dict[str, list[str]] = {}
    for c in containers:
        try:
            deps = dependencies_of(c.spec.labels)
        except EngineError:
            deps = []
        found = (resolved(lookup, d.ref) for d in deps)
        edges[c.id] = [dep.id for dep in found if dep is not None]
    return edges


def cycle_through(node: str, edges: Graph) -> list[str] | None:
    """A path `node → … → node` along `edges`, or None if `node` is on no cycle."""
    parents: dict[str, str] = {}
    stack = [node]
    while stack:
        current = stack.pop()
        for nxt in edges.get(current, ()):
            if nxt == node:
                chain = [current]
                while chain[-1] != node:
                    chain.append(parents[chain[-1]])
                return [*reversed(chain), node]
            if nxt not in parents:
                parents[nxt] = current
                stack.append(nxt)
    return None


def on_cycles(edges: Graph) -> set[str]:
    """Every node that lies on a cycle."""
    return {node for node in edges if cycle_through(node, edges) is not None}


def check_new(name: str, labels: Mapping[str, str], existing: Iterable[Container],
              lookup: Lookup) -> None:
    """Refuse a create whose labels are malformed, name an unknown container, or whose
    dependencies lead back to the new container (named `name`)."""
    deps = dependencies_of(labels)
    timeout_of(labels)
    if not deps:
        return
    new = "\0new"  # the new container's node: it has no ID yet
    names = {new: name}
    edges: dict[str, list[str]] = {new: []}
    for d in deps:
        if d.ref == name:
            raise InvalidParameter(f"{name} cannot depend on itself")
        dep = resolved(lookup, d.ref)
        if dep is None:
            raise InvalidParameter(f"depends-on: no such container: {d.ref}")
        edges[new].append(dep.id)
    for c in existing:
        names[c.id] = c.name
        try:
            refs = [d.ref for d in dependencies_of(c.spec.labels)]
        except EngineError:
            refs = []
        # a name left dangling by a removal now leads to the new container
        targets = (new if ref == name else getattr(resolved(lookup, ref), "id", None)
                   for ref in refs)
        edges[c.id] = [t for t in targets if t is not None]
    cycle = cycle_through(new, edges)
    if cycle is not None:
        raise InvalidParameter("depends-on: a dependency cycle: "
                               + " -> ".join(names.get(n, n[:12]) for n in cycle))
