"""Exec sessions are kept while their container exists, and forgotten with it or a while after
they finished."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from engine.containers.execs import FORGET_AFTER, ExecManager, ExecSession
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


def test_finished_sessions_are_forgotten_a_while_after_they_ended() -> None:
    a = _container("a")
    execs = ExecManager(_Containers(a))  # type: ignore[arg-type]
    old = execs.create(a, ExecSession(id="", container_id="", argv=["true"]))
    old.started, old.exit_code, old.finished_at = True, 0, time.monotonic() - FORGET_AFTER - 1
    recent = execs.create(a, ExecSession(id="", container_id="", argv=["true"]))
    recent.started, recent.exit_code, recent.finished_at = True, 0, time.monotonic()
    never_started = execs.create(a, ExecSession(id="", container_id="", argv=["true"]))
    running = execs.create(a, ExecSession(id="", container_id="", argv=["sleep", "9"]))
    running.started, running.running, running.finished_at = True, True, None

    execs.create(a, ExecSession(id="", container_id="", argv=["true"]))
    with pytest.raises(NotFound, match="No such exec instance"):
        execs.get(old.id)
    assert execs.get(recent.id) is recent, "a session that just ended stays inspectable"
    assert execs.get(never_started.id) is never_started, "a created one stays with its container"
    assert execs.get(running.id) is running


def test_exec_environment_terminal_and_home() -> None:
    from engine.containers.execenv import exec_environment

    # the container ran with a TTY as root: its TERM and HOME were moord's
    ran = ["PATH=/bin", "HOSTNAME=h", "TERM=xterm", "A=1", "HOME=/root"]
    plain = exec_environment(ran, user_env=["A=1"], terminal=False, home=None)
    assert plain == ["PATH=/bin", "HOSTNAME=h", "A=1", "HOME=/root"]
    as_user = exec_environment(ran, user_env=["A=1"], terminal=True, home="/var/lib/pg",
                               extra=["B=2", "A"])
    assert as_user == ["PATH=/bin", "HOSTNAME=h", "TERM=xterm", "HOME=/var/lib/pg", "B=2"]
    # what the user set wins over what moord adds
    chosen = exec_environment(["TERM=dumb", "HOME=/srv"], user_env=["TERM=dumb", "HOME=/srv"],
                              terminal=True, home="/home")
    assert chosen == ["TERM=dumb", "HOME=/srv"]


def test_go_spelling_matches_keys_as_gos_decoder() -> None:
    from engine.api.wire.fields import go_spelling

    known = ("DetachKeys", "Tty")
    assert go_spelling({"detachKeys": "ctrl-p", "tty": True, "Other": 1}, known) == {
        "DetachKeys": "ctrl-p", "Tty": True, "Other": 1}
    assert go_spelling({"DetachKeys": "a", "detachkeys": "b"}, known) == {"DetachKeys": "a"}
    assert go_spelling({"detachkeys": "b", "DetachKeys": "a"}, known) == {"DetachKeys": "a"}
