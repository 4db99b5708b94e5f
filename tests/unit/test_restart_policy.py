"""Restart decisions and back-off, including the fixes to Docker's surprises."""

from __future__ import annotations

import pytest

from engine.containers.model import ContainerState, RestartPolicy, Status, StopReason
from engine.containers.policy import Backoff, restarts_after_exit, starts_at_daemon_start


def _exited(code: int = 1, reason: StopReason = StopReason.EXITED, **kw: object) -> ContainerState:
    return ContainerState(status=Status.EXITED, exit_code=code, stop_reason=reason,
                          has_been_started=True, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "state", "expected"),
    [
        (RestartPolicy("no"), _exited(1), False),
        (RestartPolicy("always"), _exited(0), True),
        (RestartPolicy("always"), _exited(137, StopReason.USER), False),
        (RestartPolicy("unless-stopped"), _exited(0), True),
        (RestartPolicy("on-failure"), _exited(0), False),
        (RestartPolicy("on-failure"), _exited(3), True),
        (RestartPolicy("on-failure", 3), _exited(3, restart_count=2), True),
        (RestartPolicy("on-failure", 3), _exited(3, restart_count=3), False),
        (RestartPolicy("on-failure"), _exited(143, StopReason.DAEMON_SHUTDOWN), False),
        (RestartPolicy("on-failure"), _exited(255, StopReason.HOST_CRASH), False),
        (RestartPolicy("on-failure"), _exited(0, StopReason.HEALTH), True),
        (RestartPolicy("always"), _exited(0, manually_stopped=True), False),
    ],
)
def test_restart_after_exit(policy: RestartPolicy, state: ContainerState, expected: bool) -> None:
    assert restarts_after_exit(policy, state, shutting_down=False) is expected


def test_no_restart_while_the_daemon_shuts_down() -> None:
    assert not restarts_after_exit(RestartPolicy("always"), _exited(1), shutting_down=True)


@pytest.mark.parametrize(
    ("policy", "state", "rebooted", "expected"),
    [
        (RestartPolicy("always"), _exited(143, StopReason.DAEMON_SHUTDOWN), False, True),
        (RestartPolicy("always"), _exited(137, StopReason.USER, manually_stopped=True), False, False),
        (RestartPolicy("always"), _exited(137, StopReason.USER, manually_stopped=True), True, True),
        (RestartPolicy("unless-stopped"), _exited(255, StopReason.HOST_CRASH), True, True),
        (RestartPolicy("unless-stopped"), _exited(137, StopReason.USER, manually_stopped=True), True,
         False),
        (RestartPolicy("on-failure"), _exited(255, StopReason.HOST_CRASH), True, False),
        (RestartPolicy("on-failure"), _exited(143, StopReason.DAEMON_SHUTDOWN), False, False),
        (RestartPolicy("on-failure"), ContainerState(status=Status.RESTARTING, has_been_started=True),
         False, True),
        (RestartPolicy("always"), ContainerState(status=Status.CREATED), True, False),
    ],
)
def test_start_at_daemon_start(policy: RestartPolicy, state: ContainerState, rebooted: bool,
                               expected: bool) -> None:
    assert starts_at_daemon_start(policy, state, host_rebooted=rebooted) is expected


def test_backoff_doubles_caps_and_resets() -> None:
    b = Backoff()
    delays = [b.next_delay(0.5) for _ in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 60.0
    assert max(delays) == 60.0
    assert b.next_delay(10.0) == 0.1
