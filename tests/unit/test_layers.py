"""The layer map of docs/architecture.md, checked on the source: which package may import
which. A new import that crosses a layer the wrong way fails here, naming the file.

Read from the files' `import` statements (not by importing them), so an import inside a
function counts too: a lazy import still ties two layers together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support.daemon import REPO

PACKAGES = ("engine", "plugins", "network_drivers", "volume_drivers", "log_drivers")
DRIVERS = ("network_drivers", "volume_drivers", "log_drivers")

#: Modules every layer may use: stdlib-and-attrs pieces with no state of their own.
FOUNDATION = {
    "engine.errors", "engine.ids", "engine.units", "engine.durations", "engine.timestamps",
    "engine.filtering", "engine.gopattern", "engine.securejoin", "engine.limits",
    "engine.fsutil", "engine.batching", "engine.store", "engine.kernel", "engine.tarball",
    "engine.dockerfile", "engine.jsondoc", "engine.alerts.labels",
}

#: What moor may import besides itself and the foundation: pure parsers and formats that
#: the daemon also uses, none of which loads the event loop or a service.
CLI_MAY_USE = {
    "engine.images.reference", "engine.registry.auth", "engine.containers.detachkeys",
    "engine.containers.probelabels",
    "engine.containers.depends_labels",
    "engine.networks.ports", "engine.networks.etcfiles", "engine.networks.linkspec",
    "engine.build.dockerignore", "engine.runtime.devices",
    "engine.containers.restart_labels",
}


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(REPO).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _imports(path: Path) -> Iterator[str]:
    """Every project module `path` imports (`from engine import x` gives `engine.x`)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in PACKAGES:
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                names = [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield name


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            graph[_module_name(path)] = set(_imports(path))
    return graph


GRAPH = _graph()


def _within(module: str, prefixes: set[str] | tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _violations(importers: tuple[str, ...], allowed: set[str] | tuple[str, ...],
                own: tuple[str, ...] = ()) -> list[str]:
    """Imports by modules under `importers` of project modules outside `allowed` (and
    outside `own`, the importer's own package)."""
    found = []
    for module, imported in sorted(GRAPH.items()):
        if not _within(module, importers):
            continue
        for name in sorted(imported):
            if name == "engine":  # the package itself: its version, nothing else
                continue
            if not _within(name, allowed) and not _within(name, own):
                found.append(f"{module} imports {name}")
    return found


def test_the_graph_was_read() -> None:
    assert "engine.containers.manager" in GRAPH
    assert "engine.errors" in GRAPH["engine.api.http"]


#: The daemon's wiring (row 6): start-up and shutdown, its logging, its reload.
DAEMON = ("engine.daemon", "engine.daemon_logging", "engine.daemon_reload")


def test_only_the_daemon_imports_the_api() -> None:
    wrong = [f"{m} imports {n}" for m, names in sorted(GRAPH.items())
             if not _within(m, ("engine.api", *DAEMON))
             for n in sorted(names) if _within(n, ("engine.api",))]
    assert wrong == []


def test_only_the_api_and_the_daemon_see_the_wiring() -> None:
    wrong = [f"{m} imports {n}" for m, names in sorted(GRAPH.items())
             if not _within(m, ("engine.api", *DAEMON, "engine.engine"))
             for n in sorted(names) if _within(n, ("engine.engine", *DAEMON))]
    assert wrong == []


def test_the_service_manager_protocols_stand_alone() -> None:
    """engine/systemd speaks systemd's protocols; it knows nothing of the engine."""
    assert _violations(("engine.systemd",), (), own=("engine.systemd",)) == []


def test_the_engine_and_plugins_do_not_import_drivers() -> None:
    assert _violations(("engine", "plugins"), ("engine", "plugins")) == []


def test_plugins_stand_alone() -> None:
    """The contracts a third-party driver implements depend on nothing of the engine."""
    assert _violations(("plugins",), ("plugins",)) == []


def test_drivers_use_only_the_contracts_and_the_foundation() -> None:
    for driver in DRIVERS:
        assert _violations((driver,), {"plugins", *FOUNDATION}, own=(driver,)) == []


def test_the_foundation_depends_on_nothing_above_it() -> None:
    assert _violations(tuple(FOUNDATION), FOUNDATION) == []


def test_the_runtime_knows_nothing_of_containers_images_or_networks() -> None:
    """engine/runtime is the OCI seam: it takes decided inputs, it never looks them up."""
    assert _violations(("engine.runtime",), {"engine.config", "engine.events", *FOUNDATION},
                       own=("engine.runtime",)) == []


def test_moor_uses_only_light_modules() -> None:
    assert _violations(("engine.cli",), {*FOUNDATION, *CLI_MAY_USE},
                       own=("engine.cli",)) == []


SERVICES = ("engine.networks", "engine.volumes", "engine.registry", "engine.images", "engine.logs",
            "engine.managed_plugins", "engine.docker_plugins")


def test_services_do_not_reach_up_to_containers_build_or_the_api() -> None:
    """They see containers through protocols of their own (ContainerDirectory …)."""
    assert _violations(SERVICES, {*SERVICES, "engine.runtime", "engine.config", "engine.events",
                                  "engine.metrics", "plugins", *FOUNDATION}) == []


def test_containers_do_not_reach_up_to_the_build_or_the_api() -> None:
    assert _violations(("engine.containers",),
                       {"engine.containers", *SERVICES, "engine.runtime", "engine.config",
                        "engine.events", "engine.metrics", "plugins", *FOUNDATION}) == []


def test_alerts_only_listen_to_the_bus() -> None:
    """engine.alerts reads containers through a lookup the daemon hands it."""
    assert _violations(("engine.alerts",), {"engine.events", "engine.metrics", "engine.config",
                                            *FOUNDATION}, own=("engine.alerts",)) == []


def test_metrics_know_nothing_above_the_foundation() -> None:
    """Every layer records into engine.metrics; it reads the daemon through callables."""
    assert _violations(("engine.metrics",), FOUNDATION, own=("engine.metrics",)) == []


def test_the_docker_plugin_client_sees_only_the_contracts_and_the_foundation() -> None:
    """engine.docker_plugins speaks a wire protocol and adapts it to plugins/' contracts;
    the services reach it only through those contracts (the daemon wires it in)."""
    assert _violations(("engine.docker_plugins",), {"plugins", *FOUNDATION},
                       own=("engine.docker_plugins",)) == []
    users = [m for m, names in sorted(GRAPH.items())
             if not _within(m, ("engine.docker_plugins", "engine.api", "engine.engine", *DAEMON))
             for n in names if _within(n, ("engine.docker_plugins",))]
    assert users == []
