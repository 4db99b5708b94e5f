"""Fixtures: one real moord per test session, and fresh ones for tests that kill it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Moord, host_problems


def _require_host() -> None:
    problems = host_problems()
    if problems:
        pytest.fail("this host cannot run the integration tests:\n  " + "\n  ".join(problems),
                    pytrace=False)


def _short_root(prefix: str) -> Path:
    # unix socket paths must stay under 108 bytes, so keep the root short
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture(scope="session")
def moord() -> Iterator[Moord]:
    """The session's daemon, with busybox:latest imported through `docker import`."""
    _require_host()
    daemon = Moord(_short_root("moord-"))
    try:
        daemon.start()
        daemon.import_busybox()
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture
def fresh_moord() -> Iterator[Callable[[], Moord]]:
    """Make private daemons (for tests that kill or restart moord); cleaned up after."""
    _require_host()
    made: list[Moord] = []

    def make() -> Moord:
        daemon = Moord(_short_root("moordx-"))
        made.append(daemon)
        return daemon

    try:
        yield make
    finally:
        for daemon in made:
            daemon.cleanup()


@pytest.fixture
def docker_client(moord: Moord):  # type: ignore[no-untyped-def]
    import docker

    client = docker.DockerClient(base_url=moord.host, timeout=60)
    try:
        yield client
    finally:
        client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath) and os.sep + "integration" + os.sep in str(item.fspath):
            item.add_marker(pytest.mark.integration)
