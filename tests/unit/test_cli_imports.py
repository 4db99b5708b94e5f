"""moor is a client: importing it must not load the daemon's machinery.

Every `moor` command pays for what `engine.cli.main` imports before it parses a flag, so
the event loop (trio), the registry client (httpx, and rich behind its CLI) and the
daemon's services stay out of it. Checked in a fresh interpreter, by module name, not by
time.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.daemon import REPO

DAEMON_ONLY = ("trio", "httpx", "h11", "rich", "pyroute2", "dns", "pluggy", "zstandard",
               "engine.api.server", "engine.containers.manager", "engine.images.store",
               "engine.registry.client")


def _loaded_after(statement: str) -> list[str]:
    probe = (f"import json, sys\n{statement}\n"
             f"print(json.dumps(sorted(m for m in {DAEMON_ONLY!r} if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=REPO, check=True, timeout=60)
    return json.loads(result.stdout)


def test_moor_main_loads_no_daemon_machinery() -> None:
    assert _loaded_after("import engine.cli.main") == []


def test_every_moor_command_module_loads_no_daemon_machinery() -> None:
    assert _loaded_after(
        "import pkgutil, importlib, engine.cli\n"
        "for m in pkgutil.iter_modules(engine.cli.__path__):\n"
        "    if m.name == '__main__': continue\n"
        "    importlib.import_module('engine.cli.' + m.name)") == []
