"""Per-container restart back-off labels, the jittered back-off and the loop breaker."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli.options import OptionError
from engine.cli.restartflags import restart_labels
from engine.config import DaemonConfig
from engine.containers.model import ContainerState, RestartPolicy, Status, StopReason
from engine.containers.policy import Backoff, starts_at_daemon_start
from engine.containers.restart_labels import (
    RestartTuning,
    check_restart_labels,
    parse_restart_labels,
    tuning_of,
)
from engine.containers.restart_loop import backoff_for, forget, keeps_restarting, retune
from engine.errors import InvalidParameter

P = "moorage.restart."


def test_no_labels_change_nothing() -> None:
    assert parse_restart_labels({"other": "x"}) == RestartTuning()


def test_labels_are_read() -> None:
    tuning = parse_restart_labels({P + "delay-initial": "250ms", P + "delay-max": "1m30s",
                                   P + "reset-after": "2s", P + "jitter": "0.25",
                                   P + "max-quick-failures": "3"})
    assert tuning == RestartTuning(delay_initial=0.25, delay_max=90.0, reset_after=2.0,
                                   jitter=0.25, max_quick_failures=3)


@pytest.mark.parametrize(("text", "share"), [("20%", 0.2), ("0", 0.0), ("1", 1.0), ("100%", 1.0),
                                             (" 0.5 ", 0.5), ("12.5%", 0.125)])
def test_jitter_is_a_fraction_or_a_percentage(text: str, share: float) -> None:
    assert parse_restart_labels({P + "jitter": text}).jitter == pytest.approx(share)


@pytest.mark.parametrize(("labels", "words"), [
    ({P + "delay-initial": "10"}, "missing unit in duration"),
    ({P + "delay-initial": "fast"}, 'invalid duration "fast"'),
    ({P + "delay-max": "0s"}, "must be positive"),
    ({P + "reset-after": "-1s"}, "must be positive"),
    ({P + "delay-max": "48h"}, "at most 24h"),
    ({P + "delay-initial": "2s", P + "delay-max": "1s"}, "cannot be shorter than"),
    ({P + "jitter": "1.5"}, "a fraction from 0 to 1"),
    ({P + "jitter": "150%"}, "a fraction from 0 to 1"),
    ({P + "jitter": "nan"}, "a fraction from 0 to 1"),
    ({P + "jitter": "lots"}, "a fraction from 0 to 1"),
    ({P + "max-quick-failures": "-1"}, "a whole number"),
    ({P + "max-quick-failures": "2.5"}, "a whole number"),
    ({P + "max-quick-failures": ""}, "a whole number"),
])
def test_bad_labels_are_refused_by_name(labels: dict[str, str], words: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_restart_labels(labels)
    assert words in info.value.message
    assert next(iter(labels)) in info.value.message


def test_a_first_delay_beyond_the_daemons_maximum_needs_a_maximum_of_its_own() -> None:
    with pytest.raises(InvalidParameter, match="longer than the daemon's maximum restart delay"):
        check_restart_labels({P + "delay-initial": "2m"}, daemon_max=60.0)
    check_restart_labels({P + "delay-initial": "2m", P + "delay-max": "5m"}, daemon_max=60.0)


def test_bad_labels_in_a_record_run_with_the_daemons_defaults() -> None:
    assert tuning_of({P + "jitter": "2"}) == RestartTuning()


def test_labels_win_over_the_daemon_and_survive_a_reload(tmp_path: Path) -> None:
    config = DaemonConfig(data_root=tmp_path)
    b = backoff_for(config, {P + "delay-initial": "1s", P + "jitter": "10%"})
    assert (b.initial, b.maximum, b.reset_after, b.jitter) == (1.0, 60.0, 10.0, 0.1)
    reloaded = DaemonConfig(data_root=tmp_path, restart_delay_max=0.5, restart_delay_reset=3.0)
    retune(b, reloaded, {P + "delay-initial": "1s"})
    # the maximum never falls under the first delay
    assert (b.initial, b.maximum, b.reset_after, b.jitter) == (1.0, 1.0, 3.0, 0.0)


def test_jitter_shortens_each_delay_by_the_drawn_share() -> None:
    draws = iter([0.0, 1.0, 0.5, 0.25])
    b = Backoff(initial=1.0, maximum=8.0, reset_after=10.0, jitter=0.5, random=lambda: next(draws))
    delays = [b.next_delay(0.0) for _ in range(4)]
    # the unjittered steps are 1, 2, 4, 8: the jitter never lengthens one or moves the steps
    assert delays == [1.0, 1.0, 3.0, 7.0]
    assert b.current == 8.0


def test_no_jitter_is_dockers_back_off() -> None:
    b = Backoff(initial=0.1, maximum=0.4, reset_after=10.0, random=lambda: 0.9)
    assert [b.next_delay(0.0) for _ in range(4)] == [0.1, 0.2, 0.4, 0.4]


def _failed(code: int = 3) -> ContainerState:
    return ContainerState(status=Status.EXITED, exit_code=code, stop_reason=StopReason.EXITED)


def test_the_breaker_trips_after_n_quick_failures_in_a_row() -> None:
    st = _failed()
    labels = {P + "max-quick-failures": "3"}
    go = [keeps_restarting(st, labels, restart=True, run_seconds=0.1, reset_after=10.0)
          for _ in range(3)]
    assert go == [True, True, False]
    assert st.restart_loop_broken
    assert st.quick_failures == 3
    assert "restart loop broken: 3 quick failures in a row" in st.error
    assert "shorter than 10s" in st.error
    assert "last exit code 3" in st.error
    forget(st)
    assert (st.quick_failures, st.restart_loop_broken) == (0, False)


def test_a_long_run_or_a_clean_exit_ends_the_streak() -> None:
    labels = {P + "max-quick-failures": "2"}
    st = _failed()
    assert keeps_restarting(st, labels, restart=True, run_seconds=0.1, reset_after=10.0)
    assert keeps_restarting(st, labels, restart=True, run_seconds=11.0, reset_after=10.0)
    assert st.quick_failures == 0
    assert keeps_restarting(st, labels, restart=True, run_seconds=0.1, reset_after=10.0)
    st.exit_code = 0  # `always` restarts a clean exit: not a failure
    assert keeps_restarting(st, labels, restart=True, run_seconds=0.1, reset_after=10.0)
    assert st.quick_failures == 0
    assert not st.restart_loop_broken


def test_a_health_kill_is_a_failure_and_no_label_no_breaker() -> None:
    st = ContainerState(exit_code=0, stop_reason=StopReason.HEALTH)
    assert keeps_restarting(st, {P + "max-quick-failures": "1"}, restart=True, run_seconds=1.0,
                            reset_after=10.0) is False
    st = _failed()
    assert all(keeps_restarting(st, {}, restart=True, run_seconds=0.0, reset_after=10.0)
               for _ in range(50))
    assert not keeps_restarting(st, {}, restart=False, run_seconds=0.0, reset_after=10.0)


def test_a_broken_loop_stays_down_at_daemon_start() -> None:
    st = ContainerState(status=Status.EXITED, has_been_started=True, restart_loop_broken=True)
    for rebooted in (False, True):
        assert not starts_at_daemon_start(RestartPolicy("always"), st, host_rebooted=rebooted)


def test_moor_flags_become_the_labels() -> None:
    params = {"restart_delay_initial": "1s", "restart_delay_max": None, "restart_jitter": "20%",
              "restart_max_quick_failures": "3", "restart_reset_after": None}
    assert restart_labels(params, {"a": "b"}) == {
        "a": "b", P + "delay-initial": "1s", P + "jitter": "20%", P + "max-quick-failures": "3"}
    with pytest.raises(OptionError, match="--restart-delay-max value 1s: the maximum delay"):
        restart_labels({"restart_delay_initial": "2s", "restart_delay_max": "1s"}, {})
