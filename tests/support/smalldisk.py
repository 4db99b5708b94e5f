"""A small real disk for tests that need one to fill: an ext4 image on a loop device, or
a tmpfs of a fixed size (where a write that runs out of room is cut short mid-record,
which ext4 does not do).

A host without loop devices or mkfs.ext4 makes the test fail with the reason (never skip).
Whatever happens, the mount, the loop device and the image go.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

TOOLS = ("mkfs.ext4", "losetup", "mount", "umount")


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}",
                    pytrace=False)
    return result.stdout.strip()


def problems() -> list[str]:
    found = [f"{tool} is missing (Debian: e2fsprogs, mount)" for tool in TOOLS
             if shutil.which(tool) is None]
    if not os.path.exists("/dev/loop-control"):
        found.append("/dev/loop-control is missing: no loop devices (modprobe loop)")
    if os.geteuid() != 0:
        found.append("mounting a loop device needs root")
    return found


@contextlib.contextmanager
def small_disk(mountpoint: Path, image: Path, size_mib: int = 96,
               kind: str = "ext4") -> Iterator[Path]:
    """Mount a fresh ext4 (no blocks reserved for root, so full is full for everyone) or
    tmpfs of `size_mib` at `mountpoint`."""
    missing = problems()
    if missing:
        pytest.fail("this test needs a small real disk:\n  " + "\n  ".join(missing), pytrace=False)
    mountpoint.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(size_mib * 1024 * 1024)
    device = ""
    try:
        if kind == "tmpfs":
            _run("mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs",
                 str(mountpoint))
        else:
            _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
            device = _run("losetup", "--find", "--show", str(image))
            _run("mount", device, str(mountpoint))
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)
        if device:
            subprocess.run(["losetup", "-d", device], capture_output=True, check=False)
        image.unlink(missing_ok=True)


def fill(directory: Path, name: str = "filler") -> Path:
    """Write zeros into `directory/name` until the disk is full (ENOSPC); the file."""
    path = directory / name
    block = b"\0" * (1024 * 1024)
    with open(path, "wb", buffering=0) as f:
        for size in (1024 * 1024, 4096, 512):
            block = b"\0" * size
            while True:
                try:
                    f.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        with contextlib.suppress(OSError):
            os.fsync(f.fileno())
    return path
