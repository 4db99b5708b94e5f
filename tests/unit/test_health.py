"""Health checks: the status machine with a fake probe on trio's mock clock, the exec capture
with a fake runtime executable, and the moor flags."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from engine.cli.options import OptionError, health_config
from engine.containers.health import (
    MAX_LOG_ENTRIES,
    MAX_OUTPUT_LEN,
    Timing,
    probe_command,
    probe_output,
    record_probe,
    run_health_checks,
)
from engine.containers.model import (
    Container,
    ContainerSpec,
    HealthProbe,
    HealthState,
    HealthStatus,
    HostSpec,
    Status,
)
from engine.durations import format_duration
from engine.images.model import Healthcheck
from engine.runtime.exec import ExecResult, exec_capture, exec_process
from engine.runtime.oci import OCIRuntime

S = 1_000_000_000


# --- a fake manager and a scripted probe ------------------------------------------------

@attrs.define
class FakeManager:
    """What run_health_checks uses of the manager (its HealthReceiver): save, publish,
    health_failed."""

    journal: list[str] = attrs.field(factory=list)
    failed: int = 0

    async def save(self, c: Container) -> None:
        self.journal.append(f"save {c.state.health.status.value if c.state.health else None}")

    def publish(self, c: Container, action: str, **extra: str) -> None:
        self.journal.append(f"event {action}")

    def health_failed(self, c: Container) -> None:
        self.failed += 1
        self.journal.append("health_failed")

    @property
    def events(self) -> list[str]:
        return [j.removeprefix("event ") for j in self.journal if j.startswith("event ")]


@attrs.define
class Script:
    """Probe results in order (exit codes or ExecResults); records when each probe ran."""

    results: list[int | ExecResult | None]
    times: list[float] = attrs.field(factory=list)
    argvs: list[list[str]] = attrs.field(factory=list)
    took: float = 0.0

    async def __call__(self, argv: list[str], kill_after: float) -> ExecResult | None:
        self.times.append(trio.current_time())
        self.argvs.append(argv)
        if self.took:
            await trio.sleep(self.took)
        if not self.results:
            await trio.sleep_forever()
        item = self.results.pop(0)
        if isinstance(item, int):
            return ExecResult(exit_code=item, output=f"exit {item}\n".encode())
        return item


def _container(hc: Healthcheck, **spec: Any) -> Container:
    c = Container(id="c0ffee" * 10 + "abcd", name="probed", created=dt.datetime.now(dt.timezone.utc),
                  image_id="sha256:" + "0" * 64, spec=ContainerSpec(image="busybox", healthcheck=hc,
                                                                    **spec),
                  host=HostSpec(), path="sleep", args=["60"], runtime="crun")
    c.state.status = Status.RUNNING
    c.state.started_at = dt.datetime.now(dt.timezone.utc)
    c.state.health = HealthState()
    return c


def _check(test: tuple[str, ...] = ("CMD-SHELL", "true"), **kw: int) -> Healthcheck:
    return Healthcheck(test=test, **kw)


async def _run_until(manager: FakeManager, c: Container, script: Script, seconds: float,
                     start: float | None = None) -> None:
    with trio.move_on_after(seconds):
        await run_health_checks(manager, c, execute=script)


def _mock_run(fn: Callable[[], Any]) -> None:
    trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))


# --- the status machine -------------------------------------------------------------------

def test_starting_healthy_unhealthy_and_back() -> None:
    c = _container(_check(interval=1 * S, retries=3))
    m = FakeManager()
    script = Script([0, 1, 1, 1, 1, 1, 0, 2, 2, 2])
    assert c.state.health is not None

    async def main() -> None:
        await _run_until(m, c, script, 10.5)

    _mock_run(main)
    assert len(script.times) == 10
    assert m.events == ["health_status: healthy", "health_status: unhealthy",
                        "health_status: healthy", "health_status: unhealthy"]
    assert m.failed == 2  # once per transition, not once per failed probe
    # persisted before it is announced, and acted upon after
    assert m.journal == ["save healthy", "event health_status: healthy",
                         "save unhealthy", "event health_status: unhealthy", "health_failed",
                         "save healthy", "event health_status: healthy",
                         "save unhealthy", "event health_status: unhealthy", "health_failed"]
    assert c.state.health.status is HealthStatus.UNHEALTHY
    assert c.state.health.failing_streak == 3


def test_probes_come_an_interval_apart_first_one_after_an_interval() -> None:
    c = _container(_check())  # all defaults: 30 s
    m = FakeManager()
    script = Script([0, 0, 0])

    async def main() -> None:
        t0 = trio.current_time()
        await _run_until(m, c, script, 95)
        assert [round(t - t0) for t in script.times] == [30, 60, 90]

    _mock_run(main)
    assert m.events == ["health_status: healthy"]  # no event without a change


def test_retries_default_is_three_and_unhealthy_stays_quiet() -> None:
    c = _container(_check(interval=1 * S))
    m = FakeManager()
    script = Script([1] * 7)

    async def main() -> None:
        await _run_until(m, c, script, 2.5)
        assert c.state.health is not None
        assert c.state.health.status is HealthStatus.STARTING
        assert c.state.health.failing_streak == 2
        await _run_until(m, c, script, 10)

    _mock_run(main)
    assert m.events == ["health_status: unhealthy"]
    assert m.failed == 1
    assert c.state.health is not None
    assert c.state.health.failing_streak == 7


def test_start_period_failures_do_not_count_and_probes_use_the_start_interval() -> None:
    c = _container(_check(interval=10 * S, start_period=5 * S, start_interval=1 * S, retries=1))
    m = FakeManager()
    script = Script([1] * 20)

    async def main() -> None:
        t0 = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run_until, m, c, script, 7.0)
            await trio.sleep(4.5)
            assert c.state.health is not None
            assert c.state.health.status is HealthStatus.STARTING
            assert c.state.health.failing_streak == 0
            assert len(c.state.health.log) == 4  # the failures are logged all the same
        # the probe at 5 s is past the start period: it counts; then every interval
        assert [round(t - t0) for t in script.times] == [1, 2, 3, 4, 5]

    _mock_run(main)
    assert m.events == ["health_status: unhealthy"]
    assert m.failed == 1


def test_success_in_the_start_period_makes_it_healthy_then_failures_count() -> None:
    c = _container(_check(interval=10 * S, start_period=60 * S, start_interval=1 * S, retries=2))
    m = FakeManager()
    script = Script([1, 0, 1, 1])

    async def main() -> None:
        t0 = trio.current_time()
        await _run_until(m, c, script, 25)
        # starting: every start interval; healthy: every interval
        assert [round(t - t0) for t in script.times] == [1, 2, 12, 22]

    _mock_run(main)
    assert m.events == ["health_status: healthy", "health_status: unhealthy"]


def test_start_period_counts_from_the_container_start() -> None:
    """A health task begun late (moord restarted) doesn't get a fresh start period."""
    c = _container(_check(interval=1 * S, start_period=30 * S, retries=1))
    assert c.state.started_at is not None
    c.state.started_at -= dt.timedelta(seconds=60)
    m = FakeManager()

    async def main() -> None:
        await _run_until(m, c, Script([1]), 1.5)

    _mock_run(main)
    assert m.events == ["health_status: unhealthy"]


def test_paused_container_is_not_probed() -> None:
    c = _container(_check(interval=1 * S, retries=1))
    c.state.status = Status.PAUSED
    m = FakeManager()
    script = Script([1, 1, 1])

    async def main() -> None:
        await _run_until(m, c, script, 5.5)
        assert script.times == []
        c.state.status = Status.RUNNING
        await _run_until(m, c, script, 1.5)

    _mock_run(main)
    assert len(script.times) == 1
    assert m.events == ["health_status: unhealthy"]


def test_result_is_dropped_when_paused_or_stopped_under_the_probe() -> None:
    c = _container(_check(interval=1 * S, retries=1))
    m = FakeManager()

    class PausingProbe(Script):
        async def __call__(self, argv: list[str], kill_after: float) -> ExecResult | None:
            c.state.status = Status.PAUSED
            return ExecResult(exit_code=1)

    async def main() -> None:
        await _run_until(m, c, PausingProbe([]), 1.5)
        await _run_until(m, c, Script([None, None]), 3)

    _mock_run(main)
    assert m.events == []
    assert c.state.health is not None
    assert c.state.health.log == []


def test_log_keeps_the_last_five() -> None:
    c = _container(_check(interval=1 * S))
    m = FakeManager()
    script = Script(list(range(8)))

    async def main() -> None:
        await _run_until(m, c, script, 8.5)

    _mock_run(main)
    assert c.state.health is not None
    log = c.state.health.log
    assert len(log) == MAX_LOG_ENTRIES
    assert [p.exit_code for p in log] == [3, 4, 5, 6, 7]
    assert [p.output for p in log][-1] == "exit 7\n"
    assert all(p.start <= p.end for p in log)


def test_timed_out_probe_is_a_failure_with_dockers_message() -> None:
    c = _container(_check(interval=1 * S, timeout=2 * S, retries=1))
    m = FakeManager()
    script = Script([ExecResult(exit_code=-1, output=b"partial", timed_out=True)])

    async def main() -> None:
        await _run_until(m, c, script, 1.5)

    _mock_run(main)
    assert c.state.health is not None
    probe = c.state.health.log[0]
    assert probe.exit_code == -1
    assert probe.output == "Health check exceeded timeout (2s): partial"
    assert m.events == ["health_status: unhealthy"]


def test_probe_command_forms() -> None:
    assert probe_command(_check(("CMD", "curl", "-f", "x"))) == ["curl", "-f", "x"]
    assert probe_command(_check(("CMD-SHELL", "test -f /ok"))) == ["/bin/sh", "-c", "test -f /ok"]
    assert probe_command(_check(("CMD-SHELL", "x")), ["/bin/bash", "-ec"]) == ["/bin/bash", "-ec", "x"]
    assert probe_command(_check(("NONE",))) is None
    assert probe_command(_check(("CMD",))) is None
    assert probe_command(_check(("WAT", "x"))) is None
    assert probe_command(None) is None


def test_shell_form_uses_the_containers_shell() -> None:
    c = _container(_check(("CMD-SHELL", "exit 0"), interval=1 * S), shell=["/bin/ash", "-c"])
    script = Script([0])

    async def main() -> None:
        await _run_until(FakeManager(), c, script, 1.5)

    _mock_run(main)
    assert script.argvs == [["/bin/ash", "-c", "exit 0"]]


def test_nothing_to_run_means_no_probes() -> None:
    c = _container(_check(("NONE",), interval=1 * S))
    script = Script([1])

    async def main() -> None:
        await _run_until(FakeManager(), c, script, 5)

    _mock_run(main)
    assert script.times == []


def test_record_probe_rules() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    h = HealthState()

    def probe(code: int) -> HealthProbe:
        return HealthProbe(now, now, code, "")

    assert not record_probe(h, probe(1), retries=1, in_start_period=True)
    assert h.failing_streak == 0
    assert record_probe(h, probe(0), retries=1, in_start_period=True)
    assert h.status is HealthStatus.HEALTHY
    # once healthy, the start period no longer shelters failures (as in moby)
    assert record_probe(h, probe(2), retries=1, in_start_period=True)
    assert h.status is HealthStatus.UNHEALTHY


def test_output_truncation_is_marked() -> None:
    result = ExecResult(exit_code=0, output=b"x" * MAX_OUTPUT_LEN, truncated=True)
    assert probe_output(result, 30 * S) == "x" * MAX_OUTPUT_LEN + "..."
    assert probe_output(ExecResult(exit_code=-1, error="no such thing"), S) == (
        "OCI runtime exec failed: no such thing")
    assert probe_output(ExecResult(exit_code=-1, timed_out=True), 90 * S) == (
        "Health check exceeded timeout (1m30s)")


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (30 * S, "30s"), (S // 2, "500ms"), (1_500_000_000, "1.5s"), (90 * S, "1m30s"),
    (3600 * S, "1h0m0s"), (1500, "1.5µs"), (999, "999ns"), (3601 * S + S // 4, "1h0m1.25s"),
])
def test_go_duration(ns: int, text: str) -> None:
    assert format_duration(ns) == text


def test_timing_defaults() -> None:
    t = Timing.of(Healthcheck(test=("CMD", "x")))
    assert (t.interval, t.timeout, t.start_period, t.start_interval, t.retries) == (30, 30, 0, 5, 3)
    assert t.next_delay(0, HealthStatus.STARTING) == 30  # no start period: start interval unused


# --- exec capture, against a fake runtime executable ------------------------------------------

FAKE_RUNTIME = textwrap.dedent('''\
    #!{python}
    """Stands in for crun: `--root=R --log=L --log-format=json exec --pid-file F --process P ID`."""
    import json, os, sys
    args = sys.argv[1:]
    log = next(a.split("=", 1)[1] for a in args if a.startswith("--log="))
    pid_file = args[args.index("--pid-file") + 1]
    process = json.load(open(args[args.index("--process") + 1]))
    if args[-1] == "gone":
        open(log, "a").write(json.dumps({{"level": "error", "msg": "container gone"}}) + "\\n")
        sys.stderr.write("container gone\\n")
        sys.exit(1)
    pid = os.fork()
    if pid == 0:
        os.setsid()  # like runc: the exec'd process leads its own session
        os.environ.clear()
        os.environ.update(e.split("=", 1) for e in process["env"])
        os.chdir(process["cwd"])
        os.execvp(process["args"][0], process["args"])
    open(pid_file, "w").write(str(pid))
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
''')


@pytest.fixture
def fake_runtime(tmp_path: Path) -> OCIRuntime:
    path = tmp_path / "fake-crun"
    path.write_text(FAKE_RUNTIME.format(python=sys.executable))
    path.chmod(0o755)
    return OCIRuntime("crun", str(path), tmp_path / "root")


def _exec(runtime: OCIRuntime, tmp_path: Path, argv: list[str], kill_after: float = 10,
          limit: int = MAX_OUTPUT_LEN, container: str = "abc") -> ExecResult:
    template = {"user": {"uid": 0, "gid": 0}, "env": ["PATH=/usr/bin:/bin", "MARK=probe-env"],
                "cwd": str(tmp_path), "terminal": True, "consoleSize": {"height": 1, "width": 1}}

    async def main() -> ExecResult:
        return await exec_capture(runtime, container, argv, process=template, kill_after=kill_after,
                                  limit=limit, scratch=tmp_path / "exec")

    return trio.run(main)


def test_exec_process_replaces_args_and_drops_the_terminal() -> None:
    p = exec_process({"args": ["init"], "terminal": True, "consoleSize": {}, "env": ["A=1"],
                      "user": {"uid": 5, "gid": 6, "umask": 18}}, ["true"], cwd="/srv")
    assert p["args"] == ["true"]
    assert p["terminal"] is False
    assert "consoleSize" not in p
    assert p["env"] == ["A=1"]
    assert p["user"]["uid"] == 5
    assert p["cwd"] == "/srv"


def test_exec_capture_runs_with_the_process_env_and_cwd(fake_runtime: OCIRuntime,
                                                        tmp_path: Path) -> None:
    result = _exec(fake_runtime, tmp_path, ["sh", "-c", 'echo "$MARK"; pwd; echo err >&2; exit 3'])
    assert result.exit_code == 3
    assert result.ran
    assert not result.timed_out
    assert result.output.decode().splitlines() == ["probe-env", str(tmp_path), "err"]
    assert list((tmp_path / "exec").iterdir()) == []  # its scratch files are gone


def test_exec_capture_bounds_the_output(fake_runtime: OCIRuntime, tmp_path: Path) -> None:
    result = _exec(fake_runtime, tmp_path, ["sh", "-c", "head -c 300000 /dev/zero"], limit=100)
    assert result.exit_code == 0
    assert result.output == b"\0" * 100
    assert result.truncated


def test_exec_capture_does_not_wait_for_leftovers_holding_the_pipe(
        fake_runtime: OCIRuntime, tmp_path: Path) -> None:
    pid_file = tmp_path / "bg.pid"
    began = time.monotonic()
    result = _exec(fake_runtime, tmp_path, ["sh", "-c", f"sleep 30 & echo $! > {pid_file}; echo done"])
    took = time.monotonic() - began
    bg = int(pid_file.read_text())
    try:
        assert result.exit_code == 0
        assert result.output == b"done\n"
        assert took < 20, "waited for the background child's end of the pipe"
    finally:
        os.kill(bg, signal.SIGKILL)


def test_exec_capture_kills_the_process_and_its_children_on_timeout(
        fake_runtime: OCIRuntime, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    result = _exec(fake_runtime, tmp_path,
                   ["sh", "-c", f"echo started; sleep 30 & echo $! > {pid_file}; wait"],
                   kill_after=1)
    assert result.timed_out
    assert result.exit_code == -1
    assert result.output == b"started\n"
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the probe's child outlived the timeout"


def test_exec_capture_reports_the_runtimes_own_failure(fake_runtime: OCIRuntime,
                                                       tmp_path: Path) -> None:
    result = _exec(fake_runtime, tmp_path, ["true"], container="gone")
    assert not result.ran
    assert result.exit_code == -1
    assert result.error == "container gone"


def test_exec_capture_cancelled_kills_the_process(fake_runtime: OCIRuntime, tmp_path: Path) -> None:
    pid_file = tmp_path / "p.pid"
    template = {"env": ["PATH=/usr/bin:/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}}

    async def main() -> None:
        with trio.move_on_after(1):
            await exec_capture(fake_runtime, "abc", ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"],
                               process=template, kill_after=60, limit=10, scratch=tmp_path / "x")

    trio.run(main)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


# --- moor's flags ----------------------------------------------------------------------------

def test_health_flags_become_the_healthcheck() -> None:
    assert health_config() is None
    assert health_config(cmd="test -f /ok", interval="1s", retries=2, timeout="500ms") == {
        "Test": ["CMD-SHELL", "test -f /ok"], "Interval": S, "Timeout": S // 2,
        "StartPeriod": 0, "StartInterval": 0, "Retries": 2}
    assert health_config(interval="2s")["Test"] is None  # type: ignore[index]
    assert health_config(disabled=True) == {"Test": ["NONE"]}
    assert health_config(on_failure="restart") == {"OnFailure": "restart"}
    assert health_config(cmd="x", on_failure="kill")["OnFailure"] == "kill"  # type: ignore[index]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"disabled": True, "cmd": "x"}, "--no-healthcheck conflicts with --health-* options"),
    ({"interval": "-1s"}, "--health-interval cannot be negative"),
    ({"start_period": "-1s"}, "--health-start-period cannot be negative"),
    ({"retries": -1}, "--health-retries cannot be negative"),
    ({"timeout": "soon"}, 'invalid argument "soon" for "--health-timeout" flag'),
    ({"on_failure": "explode"}, "invalid --health-on-failure value"),
])
def test_health_flag_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError, match=message.replace("*", r"\*")):
        health_config(**kwargs)


def test_create_sends_the_healthcheck_in_the_create_body(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from engine.cli import running

    captured: dict[str, Any] = {}

    def fake_create(client: object, opts: Any, pull: str = "missing") -> str:
        captured.update(opts.create_body())
        return "f" * 64

    monkeypatch.setattr(running, "create_container", fake_create)
    result = CliRunner().invoke(running.create, [
        "--health-cmd", "test -f /ok", "--health-interval", "1s", "--health-retries", "2",
        "--health-on-failure", "restart", "busybox"])
    assert result.exit_code == 0, result.output
    assert captured["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -f /ok"], "Interval": S, "Timeout": 0, "StartPeriod": 0,
        "StartInterval": 0, "Retries": 2, "OnFailure": "restart"}
