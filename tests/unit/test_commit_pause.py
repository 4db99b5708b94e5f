"""A commit pauses a running container; one that exits meanwhile is committed unpaused,
and a pause that fails part-way leaves nothing frozen."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from engine.containers import commit
from engine.containers.model import Status
from engine.errors import SystemFailure
from engine.runtime.interface import ContainerGone


@attrs.define
class _Runtime:
    frozen_now: bool = False
    resumed: int = 0

    async def frozen(self, target: Any) -> bool:
        return self.frozen_now

    async def resume(self, target: Any) -> None:
        self.resumed += 1
        self.frozen_now = False


@attrs.define
class _State:
    status: Status = Status.RUNNING


@attrs.define
class _Container:
    state: _State = attrs.field(factory=_State)
    short_id: str = "c0ffee"


@attrs.define
class _Manager:
    failure: BaseException | None = None
    freeze_first: bool = False
    runtime: _Runtime = attrs.field(factory=_Runtime)
    unpaused: int = 0

    async def pause(self, c: _Container) -> None:
        if self.freeze_first:
            self.runtime.frozen_now = True
        if self.failure is not None:
            raise self.failure
        c.state.status = Status.PAUSED

    async def unpause(self, c: _Container) -> None:
        self.unpaused += 1
        c.state.status = Status.RUNNING

    def target(self, c: _Container) -> str:
        return "target"


async def test_a_container_that_exited_is_not_paused() -> None:
    m, c = _Manager(failure=ContainerGone("container not running")), _Container()
    assert await commit._pause_for_commit(m, c) is False  # type: ignore[arg-type]
    await commit._let_go(m, c)  # type: ignore[arg-type]
    assert m.unpaused == 0


async def test_a_pause_is_undone() -> None:
    m, c = _Manager(), _Container()
    assert await commit._pause_for_commit(m, c) is True  # type: ignore[arg-type]
    await commit._let_go(m, c)  # type: ignore[arg-type]
    assert (m.unpaused, c.state.status) == (1, Status.RUNNING)


async def test_a_pause_that_failed_half_way_leaves_nothing_frozen() -> None:
    m, c = _Manager(failure=SystemFailure("crun pause: boom"), freeze_first=True), _Container()
    with pytest.raises(SystemFailure):
        await commit._pause_for_commit(m, c)  # type: ignore[arg-type]
    assert (m.runtime.resumed, m.runtime.frozen_now) == (1, False)
