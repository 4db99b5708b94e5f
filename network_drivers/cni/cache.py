"""Results of CNI ADD kept on disk, so DEL and CHECK work after moord restarts.

The spec asks the runtime to give DEL and CHECK the same configuration, and the ADD's
result as `prevResult`, that the ADD had. One JSON file per attachment (network,
container, interface) holds them: the conflist as it was, the runtime config
(capabilities' arguments) and the result. Files are written whole (temporary file,
fsync, rename) under the driver's state directory, which survives reboots; a missing
file means nothing was added (or it was deleted already).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs
import trio

from network_drivers.cni.conflist import ConfList, parse


@attrs.frozen
class CachedAttachment:
    """What one ADD was given and what it answered."""

    conflist: ConfList
    container_id: str
    ifname: str
    netns: str
    runtime_config: dict[str, Any]
    result: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps({
            "kind": "cniCacheV1", "config": json.loads(self.conflist.to_json()),
            "containerId": self.container_id, "ifName": self.ifname, "netns": self.netns,
            "capabilityArgs": self.runtime_config, "result": self.result,
        })

    @classmethod
    def from_json(cls, text: str) -> CachedAttachment:
        raw = json.loads(text)
        return cls(conflist=parse(json.dumps(raw["config"]), where="cached conflist"),
                   container_id=raw["containerId"], ifname=raw["ifName"], netns=raw["netns"],
                   runtime_config=raw["capabilityArgs"], result=raw["result"])


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


@attrs.define
class ResultCache:
    """`<state-dir>/results/<key>.json`, one per attachment (`key` names it)."""

    directory: Path

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    async def save(self, key: str, entry: CachedAttachment) -> None:
        await trio.to_thread.run_sync(_write, self._path(key), entry.to_json())

    async def load(self, key: str) -> CachedAttachment | None:
        text = await trio.to_thread.run_sync(_read, self._path(key))
        return CachedAttachment.from_json(text) if text is not None else None

    async def forget(self, key: str) -> None:
        await trio.to_thread.run_sync(lambda: self._path(key).unlink(missing_ok=True))


__all__ = ["CachedAttachment", "ResultCache"]
