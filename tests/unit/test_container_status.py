"""The `ps` status column and container filters."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.containers.filters import list_predicate
from engine.containers.model import Container, ContainerSpec, ContainerState, HostSpec, Status
from engine.containers.names import generate, validate
from engine.containers.status import human_duration, status_text
from engine.errors import InvalidParameter

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


def _container(name: str = "web", status: Status = Status.RUNNING, **state: object) -> Container:
    return Container(
        id="ab" * 32, name=name, created=NOW - dt.timedelta(hours=1), image_id="sha256:1",
        spec=ContainerSpec("busybox", labels={"tier": "front"}), host=HostSpec(), path="sh",
        args=[], runtime="crun", state=ContainerState(status=status, **state))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
     (150, "2 minutes"), (3600, "About an hour"), (7200, "2 hours"), (3 * 86400, "3 days"),
     (20 * 86400, "2 weeks"), (90 * 86400, "3 months"), (800 * 86400, "2 years")],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_status_strings() -> None:
    up = _container(started_at=NOW - dt.timedelta(seconds=5))
    assert status_text(up, NOW) == "Up 5 seconds"
    paused = _container(status=Status.PAUSED, started_at=NOW - dt.timedelta(minutes=3))
    assert status_text(paused, NOW) == "Up 3 minutes (Paused)"
    exited = _container(status=Status.EXITED, exit_code=137,
                        finished_at=NOW - dt.timedelta(seconds=2))
    assert status_text(exited, NOW) == "Exited (137) 2 seconds ago"
    assert status_text(_container(status=Status.CREATED), NOW) == "Created"


def test_filters() -> None:
    c = _container()
    lookup = lambda ref: c  # noqa: E731
    none: set[str] = set()
    assert list_predicate({"name": ["we"]}, lookup, lambda r: none)(c)
    assert not list_predicate({"name": ["^/db"]}, lookup, lambda r: none)(c)
    assert list_predicate({"label": ["tier=front"]}, lookup, lambda r: none)(c)
    assert not list_predicate({"label": ["tier=back"]}, lookup, lambda r: none)(c)
    assert list_predicate({"status": ["running", "exited"]}, lookup, lambda r: none)(c)
    assert list_predicate({"id": ["abab"]}, lookup, lambda r: none)(c)
    with pytest.raises(InvalidParameter):
        list_predicate({"status": ["sleeping"]}, lookup, lambda r: none)
    with pytest.raises(InvalidParameter):
        list_predicate({"colour": ["red"]}, lookup, lambda r: none)


def test_names() -> None:
    assert validate("/web-1") == "web-1"
    assert validate("a") == "a"  # Docker refuses one-letter names; Podman and moorage don't
    with pytest.raises(InvalidParameter, match="Invalid container name"):
        validate("-a")
    with pytest.raises(InvalidParameter):
        validate("bad name")
    taken = {"x"}
    assert generate(taken) not in taken
