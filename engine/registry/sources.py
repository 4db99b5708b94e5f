"""Which repositories a blob is known to be in: the candidates for a cross-repository mount."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from engine import fsutil


class BlobSources:
    """Which repositories each blob is known to be in (`domain/path`): mount candidates.

    A hint, not state: kept in `images/blob-sources.json`, rewritten after pulls and
    pushes; losing it costs an upload, nothing more.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sources: dict[str, list[str]] = {}
        try:
            raw = json.loads(path.read_bytes())
            if isinstance(raw, dict):
                self._sources = {str(k): [str(r) for r in v] for k, v in raw.items()
                                 if isinstance(v, list)}
        except (OSError, ValueError):
            pass

    def add(self, digest: str, repository: str) -> None:
        known = self._sources.setdefault(digest, [])
        if repository in known:
            known.remove(repository)
        known.insert(0, repository)
        del known[5:]

    def candidates(self, digest: str, domain: str, exclude: str) -> list[str]:
        return [r.split("/", 1)[1] for r in self._sources.get(digest, [])
                if r.split("/", 1)[0] == domain and r != exclude]

    async def save(self) -> None:
        data = json.dumps(self._sources).encode()
        await trio.to_thread.run_sync(
            lambda: fsutil.atomic_write(self.path, data, mode=0o644, durable=False))


__all__ = ["BlobSources"]
