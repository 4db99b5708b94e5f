"""Third-party plugin packages of the tests, installed with pip for a while.

Each package under tests/plugins is a package of its own (its own pyproject and entry
point in `moorage.plugins`); installing it into this venv is how a user would add a
driver, so discovery is the real one: nothing is registered by hand.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.daemon import REPO


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=300, check=False)


@contextlib.contextmanager
def installed(module: str, distribution: str) -> Iterator[None]:
    """`pip install --no-deps --no-build-isolation` tests/plugins/<module> (built from a
    copy: pip builds in the source tree), and uninstall it afterwards."""
    if importlib.util.find_spec("wheel") is None:
        raise RuntimeError("building the plugin package with --no-build-isolation needs `wheel` "
                           "in the venv: .venv/bin/pip install wheel")
    source = REPO / "tests" / "plugins" / module
    with tempfile.TemporaryDirectory(prefix=f"{distribution}-") as tmp:
        copy = Path(tmp) / module
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        result = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(copy))
        if result.returncode != 0:
            raise RuntimeError(f"pip install failed:\n{result.stdout}\n{result.stderr}")
    importlib.invalidate_caches()
    try:
        yield
    finally:
        removed = _pip("uninstall", "-y", distribution)
        sys.modules.pop(module, None)
        importlib.invalidate_caches()
        if removed.returncode != 0:
            raise RuntimeError(f"pip uninstall failed:\n{removed.stderr}")
