"""Fixtures: one real moord per test session, and fresh ones for tests that kill it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Moord, docker_cli_description, host_problems


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
def containers(moord: Moord) -> Iterator[list[str]]:
    """IDs a test appends the containers it made to; removed (forced) after it."""
    made: list[str] = []
    yield made
    if made:
        moord.docker("rm", "-f", *made, check=False)


@pytest.fixture
def docker_client(moord: Moord):  # type: ignore[no-untyped-def]
    import docker

    client = docker.DockerClient(base_url=moord.host, timeout=60)
    try:
        yield client
    finally:
        client.close()


def pytest_report_header() -> str:
    """Say which docker CLI the integration tests drive (a static one or Debian's)."""
    return docker_cli_description()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test that needs root or a program and can't have it fails, saying what is
    missing: it never passes by skipping the work."""
    for mark in item.iter_markers("needs_root"):
        if os.geteuid() != 0:
            why = mark.args[0] if mark.args else "it needs root"
            pytest.fail(f"this test must run as root: {why}", pytrace=False)
    for mark in item.iter_markers("needs_tools"):
        missing = [name for name in mark.args if shutil.which(name) is None]
        if missing:
            pytest.fail(f"this test needs {', '.join(missing)} on PATH (scripts/test.sh "
                        "installs them)", pytrace=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath) and os.sep + "integration" + os.sep in str(item.fspath):
            item.add_marker(pytest.mark.integration)
