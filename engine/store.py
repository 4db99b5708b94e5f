"""The crash-safe embedded store: one JSON document per record, replaced atomically.

A record is an attrs class; `converter` turns it into plain JSON and back. Each save
is a write-to-temporary, fsync, rename, fsync-directory (`engine.fsutil.atomic_write`),
run on a worker thread, so a `kill -9` of moord at any instant leaves every document
either as it was or as it became, never half-written. Start-up reconciles the records
with what the kernel and conmon say (see `engine.containers.recovery`).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
from pathlib import Path
from typing import Any, Generic, TypeVar

import cattrs
import trio

from engine import fsutil

log = logging.getLogger(__name__)

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=False)
converter.register_unstructure_hook(dt.datetime, lambda d: d.isoformat())
converter.register_structure_hook(dt.datetime, lambda s, _: dt.datetime.fromisoformat(s))
converter.register_unstructure_hook(Path, str)
converter.register_structure_hook(Path, lambda s, _: Path(s))
converter.register_unstructure_hook(enum.Enum, lambda e: e.value)

# fsyncs from many tasks at once only queue up in the kernel; a few threads suffice.
_store_limiter = trio.CapacityLimiter(4)


def to_json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class RecordStore(Generic[T]):
    """A directory of `<key>.json` documents, each one record of type `record_type`."""

    def __init__(self, directory: Path, record_type: type[T], *, durable: bool = True) -> None:
        self.directory = directory
        self.record_type = record_type
        self.durable = durable

    def _path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad record key {key!r}")
        return self.directory / f"{key}.json"

    def load_all(self) -> dict[str, T]:
        """Read every record (blocking; used once at start-up). Unreadable files are set aside."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fsutil.clean_stale_temporaries(self.directory)
        records: dict[str, T] = {}
        for path in sorted(self.directory.glob("*.json")):
            try:
                raw = json.loads(path.read_bytes())
                records[path.stem] = converter.structure(raw, self.record_type)
            except (ValueError, TypeError, KeyError, cattrs.BaseValidationError) as exc:
                quarantine = path.with_suffix(".corrupt")
                log.error("record %s is unreadable (%s); moved to %s", path, exc, quarantine)
                path.rename(quarantine)
        return records

    def encode(self, record: T) -> bytes:
        return to_json_bytes(converter.unstructure(record, self.record_type))

    async def save(self, key: str, record: T) -> None:
        data = self.encode(record)
        path = self._path(key)
        await trio.to_thread.run_sync(
            lambda: fsutil.atomic_write(path, data, durable=self.durable),
            limiter=_store_limiter,
        )

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await trio.to_thread.run_sync(fsutil.durable_unlink, path, limiter=_store_limiter)
