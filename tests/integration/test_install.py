"""The production install's release step (scripts/install-release.sh), into a private prefix.

It builds the wheel from this checkout and makes a venv per release: moord and moor run
from it, it carries no development tools, and `current` moves to each new release in
one rename while `previous` keeps the one before for a rollback.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

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
