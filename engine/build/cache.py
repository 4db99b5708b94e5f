"""The build cache: which image a step made, keyed by what the step was given.

A key is the sha256 of the parent image ID, the step as it runs (variables already
substituted) and, for COPY and ADD, a hash of the files' contents: the same step on
the same parent with the same files makes the same image, so it is reused. Entries
live in `<data-root>/build-cache.json` (atomic replace), so a cached step survives a
moord restart; an entry whose image is gone no longer counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import trio

from engine import fsutil

log = logging.getLogger(__name__)


#: bumped when the same step on the same parent comes to make a different image (2: a
#: stage's config gets the default PATH), so entries from before no longer match
KEY_VERSION = 2


def step_key(parent_id: str, step: str, extra: str = "") -> str:
    return hashlib.sha256(f"{KEY_VERSION}\n{parent_id}\n{step}\n{extra}".encode()).hexdigest()


class BuildCache:
    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self.path = path
        self.durable = durable
        self._entries: dict[str, str] = {}
        self._lock = trio.Lock()
        try:
            raw = json.loads(path.read_bytes())
            if isinstance(raw, dict):
                self._entries = {str(k): str(v) for k, v in raw.items()}
        except FileNotFoundError:
            pass
        except ValueError as exc:
            log.error("%s is unreadable (%s); starting with an empty build cache", path, exc)

    def lookup(self, key: str) -> str | None:
        return self._entries.get(key)

    async def record(self, key: str, image_id: str) -> None:
        async with self._lock:
            self._entries[key] = image_id
            await self._save()

    async def forget(self, image_ids: set[str] | None = None) -> int:
        """Drop the entries naming `image_ids` (all of them if None); how many went."""
        async with self._lock:
            doomed = [k for k, v in self._entries.items() if image_ids is None or v in image_ids]
            for k in doomed:
                del self._entries[k]
            if doomed:
                await self._save()
            return len(doomed)

    def image_ids(self) -> set[str]:
        return set(self._entries.values())

    async def _save(self) -> None:
        data = json.dumps(self._entries, indent=0, sort_keys=True).encode()
        await trio.to_thread.run_sync(
            lambda: fsutil.atomic_write(self.path, data, mode=0o600, durable=self.durable))


__all__ = ["BuildCache", "step_key"]
