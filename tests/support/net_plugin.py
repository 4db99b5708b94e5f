"""The third-party network driver package of the tests, installed with pip for a while.

tests/plugins/moorage_testnet is a package of its own (its own pyproject and entry point
in `moorage.plugins`); installing it into this venv is how a user would add a driver, so
discovery is the real one: nothing is registered by hand.
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

PACKAGE_SRC = REPO / "tests" / "plugins" / "moorage_testnet"
DISTRIBUTION = "moorage-testnet"
MODULE = "moorage_testnet"
DRIVER = "testnet"


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=300, check=False)


@contextlib.contextmanager
def network_plugin_installed() -> Iterator[None]:
    """`pip install --no-deps --no-build-isolation` the package (built from a copy), and
    uninstall it afterwards."""
    if importlib.util.find_spec("wheel") is None:
        raise RuntimeError("building the plugin package with --no-build-isolation needs `wheel` "
                           "in the venv: .venv/bin/pip install wheel")
    with tempfile.TemporaryDirectory(prefix="moorage-testnet-") as tmp:
        copy = Path(tmp) / MODULE
        shutil.copytree(PACKAGE_SRC, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        installed = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(copy))
        if installed.returncode != 0:
            raise RuntimeError(f"pip install failed:\n{installed.stdout}\n{installed.stderr}")
    importlib.invalidate_caches()
    try:
        yield
    finally:
        removed = _pip("uninstall", "-y", DISTRIBUTION)
        sys.modules.pop(MODULE, None)
        importlib.invalidate_caches()
        if removed.returncode != 0:
            raise RuntimeError(f"pip uninstall failed:\n{removed.stderr}")
