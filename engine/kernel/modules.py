"""Filesystems the kernel knows, and loading the module that provides one.

After a reboot a modular kernel has not registered overlayfs until something loads its
module (the first overlay mount would, through the kernel's own request for
`fs-overlay`). moord checks for it before it mounts anything, so it loads the module
itself rather than refuse a host that can run containers, and says modprobe's own
words when that fails. Blocking: call from a worker thread.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

FILESYSTEMS = Path("/proc/filesystems")
#: where modprobe lives when PATH (e.g. a service's) lacks the sbin directories
SBIN_DIRS = ("/usr/sbin", "/sbin")
MODPROBE_TIMEOUT = 30.0


def filesystem_registered(fstype: str, filesystems: Path = FILESYSTEMS) -> bool:
    """Whether the kernel lists `fstype` in /proc/filesystems (built in or loaded)."""
    try:
        lines = filesystems.read_text().splitlines()
    except OSError:
        return False
    return any(line.split()[-1:] == [fstype] for line in lines)


def find_modprobe() -> str | None:
    """modprobe's path: on PATH, else in the sbin directories."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    return shutil.which("modprobe", path=search)


def load_module(module: str, modprobe: str | None = None,
                timeout: float = MODPROBE_TIMEOUT) -> str | None:
    """`modprobe MODULE`: None when it succeeded, else why not (modprobe's message)."""
    program = modprobe or find_modprobe()
    if program is None:
        return "modprobe is not installed (apt-get install kmod)"
    try:
        result = subprocess.run([program, module], capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"`modprobe {module}` did not finish within {timeout:g}s"
    except OSError as exc:
        return f"`modprobe {module}` could not run: {exc.strerror or exc}"
    if result.returncode != 0:
        said = result.stderr.decode(errors="replace").strip() or f"exit status {result.returncode}"
        return f"`modprobe {module}` failed: {said}"
    return None


def ensure_filesystem(fstype: str, module: str, filesystems: Path = FILESYSTEMS,
                      modprobe: str | None = None) -> tuple[bool, str | None]:
    """Make `fstype` available, loading `module` when the kernel lacks it.

    Returns (loaded, problem): loaded is True when this call loaded the module; problem
    is None when the filesystem is there now, else why it is not.
    """
    if filesystem_registered(fstype, filesystems):
        return False, None
    problem = load_module(module, modprobe)
    if filesystem_registered(fstype, filesystems):
        return True, None
    return False, problem or f"`modprobe {module}` succeeded but the kernel still lists no {fstype}"
