"""The production install's release step (scripts/install-release.sh), into a private prefix.

It builds the wheel from this checkout and makes a venv per release: moord and moor run
from it, it carries no development tools, and `current` moves to each new release in
one rename while `previous` keeps the one before for a rollback. An upgrade (a new
release, moord restarted from `current`) loses no log line and no request to a published
port of the containers that run through it.
"""

from __future__ import annotations

import subprocess
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.support.daemon import Moord, inspect

REPO = Path(__file__).resolve().parents[2]


def _install_release(prefix: Path) -> Path:
    done = subprocess.run(["bash", str(REPO / "scripts" / "install-release.sh"), str(prefix)],
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"install-release.sh failed:\n{done.stdout}\n{done.stderr}"
    return Path(done.stdout.strip().splitlines()[-1])


def _python(release: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(release / "bin" / "python"), "-c", code], capture_output=True,
                          text=True, timeout=120, check=False, cwd="/")


def test_release_is_a_wheel_install_without_dev_tools_and_switches_atomically(tmp_path: Path) -> None:
    prefix = tmp_path / "opt-moorage"
    first = _install_release(prefix)
    assert (prefix / "current").resolve() == first.resolve()
    assert first.parent == prefix / "releases"

    # moorage comes from the release's site-packages (a wheel), not from the checkout
    where = _python(first, "import engine, plugins, log_drivers; print(engine.__file__)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(first)), where.stdout
    assert "site-packages" in where.stdout
    # the built-in drivers are found through the installed entry points
    eps = _python(first, "from importlib.metadata import entry_points; "
                         "print(sorted(e.name for e in entry_points(group='moorage.plugins')))")
    assert "moorage.log_drivers" in eps.stdout, eps.stderr
    for tool in ("pytest", "mypy", "ruff", "docker", "hypothesis"):
        probe = _python(first, f"import {tool}")
        assert probe.returncode != 0, f"the production venv carries {tool}"
        assert "ModuleNotFoundError" in probe.stderr
    assert not (first / "bin" / "pytest").exists()
    for program in ("moord", "moor"):
        helped = subprocess.run([str(prefix / "current" / "bin" / program), "--help"],
                                capture_output=True, text=True, timeout=120, check=False)
        assert helped.returncode == 0, helped.stderr
    record = (first / "moorage-release").read_text()
    assert f"release={first.name}\n" in record
    assert "version=" in record

    second = _install_release(prefix)
    assert second != first
    assert (prefix / "current").resolve() == second.resolve()
    assert (prefix / "previous").resolve() == first.resolve()
    assert not (prefix / "current.new").exists()

    third = _install_release(prefix)
    assert (prefix / "current").resolve() == third.resolve()
    assert (prefix / "previous").resolve() == second.resolve()
    assert not first.exists(), "a release older than previous is removed"
    assert sorted(p.name for p in (prefix / "releases").iterdir()) == sorted([second.name, third.name])


def _state(d: Moord, name: str) -> dict[str, object]:
    state = inspect(d, name)["State"]
    assert isinstance(state, dict)
    return state


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


class _Client(threading.Thread):
    """Asks the published port again and again until told to stop; keeps every outcome."""

    def __init__(self, port: str) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/"
        self.outcomes: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:
                    body = response.read().strip()
                self.outcomes.append("ok" if body == b"answered" else f"body {body!r}")
            except OSError as error:
                self.outcomes.append(f"error {error}")
            self.done.wait(0.05)


def test_upgrade_to_a_new_release_loses_no_log_line_and_no_request(
        tmp_path: Path, fresh_moord: Callable[[], Moord]) -> None:
    prefix = tmp_path / "opt-moorage"
    first = _install_release(prefix)
    d = fresh_moord()
    d.program = (str(prefix / "current" / "bin" / "moord"),)
    d.start(timeout=120)
    assert d.proc is not None
    assert f"{first}/bin/python" in _cmdline(d.proc.pid)
    d.import_busybox()
    d.docker("run", "-d", "--name", "logger", "busybox", "sh", "-c",
             'i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.02; done')
    d.docker("run", "-d", "--name", "web", "-p", "127.0.0.1::8080", "busybox", "sh", "-c",
             "mkdir -p /www && echo answered >/www/index.html && exec httpd -f -p 8080 -h /www")
    port = d.docker("port", "web", "8080").stdout.splitlines()[0].rsplit(":", 1)[1]
    pids = {name: _state(d, name)["Pid"] for name in ("logger", "web")}
    client = _Client(port)
    client.start()
    try:
        # the port answers before the upgrade (httpd may need a moment to listen)
        while "ok" not in client.outcomes:
            assert client.is_alive()
            client.done.wait(0.1)
        client.outcomes.clear()

        second = _install_release(prefix)
        assert d.stop() == 0
        d.start(timeout=120)
        assert f"{second}/bin/python" in _cmdline(d.proc.pid)
        assert (prefix / "previous").resolve() == first.resolve()
        d.docker("ps")  # the new moord has re-adopted the containers and answers
    finally:
        client.done.set()
        client.join()
    assert client.outcomes, "the client made no request during the upgrade"
    failed = [outcome for outcome in client.outcomes if outcome != "ok"]
    assert failed == [], f"{len(failed)} of {len(client.outcomes)} requests failed: {failed[:5]}"
    for name, pid in pids.items():
        state = _state(d, name)
        assert state["Running"] is True, name
        assert state["Pid"] == pid, f"{name} was restarted"

    d.docker("stop", "-t", "1", "logger")
    lines = d.docker("logs", "logger").stdout.splitlines()
    numbers = [int(line.removeprefix("line ")) for line in lines]
    assert numbers == list(range(1, len(numbers) + 1)), "log lines were lost or repeated"
