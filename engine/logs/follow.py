"""Noticing that a log file grew or was replaced: inotify on its directory, polling if not.

The directory is watched, not the file, because conmon's log reopen replaces the file
(``<log>.tmp`` renamed over ``<log>``) and the engine's rotation renames it away; a watch
on the old inode would see neither. Every event in the directory wakes the follower: it
is cheap to look, and writes to a file renamed away (``<log>.1``, still conmon's until it
reopens) must wake it too. The inotify binding itself is `engine.kernel.inotify`.
"""

from __future__ import annotations

import attrs
import trio

from engine.kernel.inotify import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
)

#: What a log directory watch asks for: growth, and files appearing or going.
DIR_EVENTS = (
    IN_MODIFY
    | IN_CLOSE_WRITE
    | IN_CREATE
    | IN_MOVED_TO
    | IN_MOVED_FROM
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)


@attrs.define(eq=False)
class Wakeup:
    """A resettable flag for "look again": set by watchers, waited on by the reader.

    The reader calls `clear()` *before* it reads, so anything that happens after the read
    began sets the flag again and nothing slips between a read and a wait.
    """

    _event: trio.Event = attrs.field(factory=trio.Event)

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        if self._event.is_set():
            self._event = trio.Event()

    async def wait(self, max_wait: float) -> bool:
        """True if woken, False if `max_wait` seconds passed first."""
        with trio.move_on_after(max_wait):
            await self._event.wait()
            return True
        return False
