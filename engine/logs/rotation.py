"""Rotating a container's log without losing or repeating a line.

conmon holds the log open and appends to it. To rotate, moord renames `ctr.log` to
`ctr.log.1` (older ones shift to `.2`, `.3`…, the oldest is deleted) and then asks
conmon to reopen (the runtime's `reopen_log`, through the container's `ctl` FIFO):
conmon closes its descriptor
(lines written in between land at the end of `.1`, which still is the file it had
open) and creates a fresh `ctr.log`. Readers follow by inode, so a follower drains
`.1` and carries on in the new file. conmon's own `--log-size-max` is not used: it
replaces the file without keeping it and, as it counts bytes across the reopens moord
asks for, it would fire in normal operation too (see docs/logs.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import attrs
import trio

from engine.kernel.inotify import IN_CREATE, IN_MODIFY, IN_MOVED_TO, Inotify
from engine.units import ram_in_bytes

log = logging.getLogger(__name__)

MIN_CHECK_INTERVAL = 0.02  # at most 50 size checks a second, however fast the writes
POLL_INTERVAL = 1.0  # a look without being told, in case inotify is missing or misses
REOPEN_WAIT = 5.0

# asks the log's writer to reopen it by name; False if it could not be asked
Reopen = Callable[[], Awaitable[bool]]


@attrs.frozen
class RotationPolicy:
    max_size: int  # bytes; 0 = never rotate
    max_files: int  # the live file plus rotated ones

    @classmethod
    def from_options(cls, options: Mapping[str, str], *, default_size: str,
                     default_files: int) -> RotationPolicy:
        size_text = options.get("max-size", default_size)
        size = 0 if size_text in ("", "-1") else ram_in_bytes(size_text)
        files = int(options.get("max-file", default_files))
        return cls(size, max(files, 1))


def rotated_files(log_path: Path) -> list[Path]:
    """`ctr.log.1`, `ctr.log.2`, … that exist, newest first (blocking)."""
    found: list[Path] = []
    index = 1
    while True:
        candidate = log_path.with_name(f"{log_path.name}.{index}")
        if not candidate.exists():
            return found
        found.append(candidate)
        index += 1


def shift_files(log_path: Path, max_files: int) -> Path | None:
    """Make room and rename the live file to `.1`. Returns a file to delete after the
    reopen (only when a single file is kept), else None. Blocking."""
    keep_rotated = max_files - 1
    if keep_rotated == 0:
        target = log_path.with_name(f"{log_path.name}.1")
        os.replace(log_path, target)
        return target
    oldest = log_path.with_name(f"{log_path.name}.{keep_rotated}")
    with contextlib.suppress(FileNotFoundError):
        oldest.unlink()
    for index in range(keep_rotated - 1, 0, -1):
        src = log_path.with_name(f"{log_path.name}.{index}")
        with contextlib.suppress(FileNotFoundError):
            os.replace(src, log_path.with_name(f"{log_path.name}.{index + 1}"))
    os.replace(log_path, log_path.with_name(f"{log_path.name}.1"))
    for index in range(max_files, max_files + 64):
        # a smaller max-file than last time: drop the surplus
        extra = log_path.with_name(f"{log_path.name}.{index}")
        if not extra.exists():
            break
        extra.unlink()
    return None


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


async def keep_rotated(log_path: Path, reopen: Reopen, policy: RotationPolicy) -> None:
    """Rotate `log_path` whenever it reaches the policy's size, until cancelled."""
    if policy.max_size <= 0:
        return
    inotify = Inotify.open()
    woken = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            if inotify is not None:
                inotify.add_watch(log_path.parent, IN_MODIFY | IN_CREATE | IN_MOVED_TO)

                async def watch() -> None:
                    nonlocal woken
                    while True:
                        await inotify.read_events()
                        woken.set()

                nursery.start_soon(watch)
            while True:
                if await trio.to_thread.run_sync(_size, log_path) >= policy.max_size:
                    await rotate(log_path, reopen, policy)
                with trio.move_on_after(POLL_INTERVAL):
                    await woken.wait()
                woken = trio.Event()
                await trio.sleep(MIN_CHECK_INTERVAL)
    finally:
        if inotify is not None:
            inotify.close()


async def rotate(log_path: Path, reopen: Reopen, policy: RotationPolicy) -> None:
    """One rotation: shift and rename, ask conmon to reopen, wait for the new file."""
    old_inode = await trio.to_thread.run_sync(lambda: os.stat(log_path).st_ino)
    discard = await trio.to_thread.run_sync(shift_files, log_path, policy.max_files)
    if not await reopen():
        log.warning("could not ask conmon to reopen %s", log_path)
    with trio.move_on_after(REOPEN_WAIT):
        while True:
            try:
                st = await trio.to_thread.run_sync(os.stat, log_path)
                if st.st_ino != old_inode:
                    break
            except FileNotFoundError:
                pass
            await trio.sleep(0.01)
    if discard is not None:
        await trio.to_thread.run_sync(lambda: discard.unlink(missing_ok=True))
