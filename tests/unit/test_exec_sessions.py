"""Exec sessions are kept while their container exists, and forgotten with it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from engine.containers.execs import ExecManager, ExecSession
from engine.containers.model import Container, ContainerSpec, HostSpec, Status
from engine.errors import Conflict, NotFound


def _container(cid: str) -> Container:
    c = Container(id=cid * 64, name=f"c{cid}", created=dt.datetime.now(dt.UTC),
                  image_id="sha256:" + "0" * 64, spec=ContainerSpec(image="busybox"),
                  host=HostSpec(), path="sleep", args=["60"], runtime="crun")
    c.state.status = Status.RUNNING
    return c


class _Containers:
    def __init__(self, *containers: Container) -> None:
        self.by_id = {c.id: c for c in containers}

    def all(self) -> list[Container]:
        return list(self.by_id.values())

    def get(self, ref: str) -> Container:
        if ref not in self.by_id:
            raise NotFound(f"No such container: {ref}")
        return self.by_id[ref]

    def publish(self, *args: Any, **kwargs: Any) -> None:
        pass


def test_finished_sessions_go_with_their_container() -> None:
    a, b = _container("a"), _container("b")
    containers = _Containers(a, b)
    execs = ExecManager(containers)  # type: ignore[arg-type]
    done = execs.create(a, ExecSession(id="", container_id="", argv=["true"]))
    done.started, done.exit_code = True, 0
    running = execs.create(a, ExecSession(id="", container_id="", argv=["sleep", "9"]))
    running.started, running.running = True, True
    other = execs.create(b, ExecSession(id="", container_id="", argv=["true"]))
    assert execs.get(done.id) is done

    del containers.by_id[a.id]  # container a removed
    execs.create(b, ExecSession(id="", container_id="", argv=["true"]))
    with pytest.raises(NotFound, match="No such exec instance"):
        execs.get(done.id)
    assert execs.get(running.id) is running, "a running exec is never dropped"
    assert execs.get(other.id) is other
    with pytest.raises(Conflict, match="is already running"):
        execs.check_startable(running)
