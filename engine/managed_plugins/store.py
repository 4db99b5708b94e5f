"""Managed plugins (`docker plugin create/ls/inspect/rm`): stored, listed, not run.

A managed plugin is a root filesystem and a `config.json`, sent as one tar (`docker
plugin create`, docker-py's `create_plugin`). dockerd runs an enabled one as a
container and speaks the plugin protocol to it; moord does not run them yet, so
enabling is refused and every plugin stays disabled. What is stored is complete, so
running them later needs no migration.

Layout::

    <data-root>/state/plugins/<id>.json   the record (it exists => the plugin exists)
    <data-root>/plugins/<id>/rootfs/      the unpacked root filesystem
    <data-root>/plugins/tmp/              uploads and unpacks in progress

Creation unpacks under tmp/, renames the directory into place, then writes the record:
a crash leaves either no record (the directory is removed at the next start) or the
whole plugin. Removal goes the other way. Names resolve as dockerd resolves them: the
full ID, then the name (`docker-sdk-py/dummy` is `docker-sdk-py/dummy:latest`), then a
unique ID prefix. This store is the managed plugins' only home; the legacy plugin
protocol (sockets in /run/docker/plugins) is another module's business.
"""

from __future__ import annotations

import logging
import posixpath
import secrets
import tarfile
from collections.abc import AsyncIterable
from pathlib import Path

import attrs
import trio

from engine import fsutil, ids
from engine.batching import write_in_batches
from engine.errors import Conflict, InvalidParameter, NotFound, Unsupported
from engine.images.reference import is_full_id, parse
from engine.managed_plugins.config import (
    MAX_CONFIG_BYTES,
    PluginConfig,
    PluginDevice,
    PluginMount,
    parse_config,
)
from engine.store import RecordStore
from engine.tarball.compression import decompressed
from engine.tarball.extract import Extractor, ExtractRules

log = logging.getLogger(__name__)

_RULES = ExtractRules("plugin archive", scope="plugin's rootfs")


@attrs.frozen
class PluginSettings:
    """What a user may change (settable fields), initially the config's values."""

    env: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    mounts: tuple[PluginMount, ...] = ()
    devices: tuple[PluginDevice, ...] = ()

    @classmethod
    def initial(cls, config: PluginConfig) -> PluginSettings:
        return cls(env=tuple(f"{e.name}={e.value}" for e in config.env if e.value is not None),
                   args=config.args.value, mounts=config.mounts, devices=config.devices)


@attrs.define
class ManagedPlugin:
    id: str
    name: str  # familiar, with its tag: `docker-sdk-py/dummy:latest`
    config: PluginConfig
    settings: PluginSettings
    enabled: bool = False
    reference: str = ""  # where it came from (`PluginReference`): its name, when created


class _ArchiveReader(Extractor):
    """The plugin tar: `config.json` kept in memory, `rootfs/…` unpacked without that
    prefix, everything else skipped (dockerd's `splitConfigRootFSFromTar`)."""

    config: bytes | None = None
    has_rootfs: bool = False

    def member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        name = posixpath.normpath("/" + m.name).lstrip("/")
        if name == "config.json" and m.isreg():
            if m.size > MAX_CONFIG_BYTES:
                raise self.fail(f"config.json is larger than {MAX_CONFIG_BYTES} bytes")
            f = tf.extractfile(m)
            self.config = f.read() if f is not None else b""
            return
        first, _, rest = name.partition("/")
        if first != "rootfs":
            return
        self.has_rootfs = True
        m.name = rest or "."
        if m.islnk() and m.linkname.lower().startswith("rootfs/"):
            m.linkname = m.linkname[len("rootfs/"):]
        super().member(tf, m)


def _unpack_sync(upload: Path, dest: Path) -> bytes:
    """Unpack the plugin archive's rootfs into `dest`; its config.json (blocking)."""
    reader = _ArchiveReader.into(dest, _RULES)
    with open(upload, "rb") as f:
        reader.extract(decompressed(f))
    if not reader.has_rootfs:
        raise InvalidParameter("no rootfs found")
    if reader.config is None:
        raise InvalidParameter("config not found")
    return reader.config


class PluginStore:
    """The daemon's managed plugins. Reads are synchronous; changes are serialised."""

    def __init__(self, data_root: Path, *, durable: bool = True) -> None:
        self.root = data_root / "plugins"
        self.tmp = self.root / "tmp"
        self._records: RecordStore[ManagedPlugin] = RecordStore(
            data_root / "state" / "plugins", ManagedPlugin, durable=durable)
        self._plugins: dict[str, ManagedPlugin] = {}
        self._lock = trio.Lock()

    @classmethod
    async def open(cls, data_root: Path, *, durable: bool = True) -> PluginStore:
        store = cls(data_root, durable=durable)
        await trio.to_thread.run_sync(store._load_sync)
        return store

    def _load_sync(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fsutil.remove_tree(self.tmp)
        self.tmp.mkdir()
        self._plugins = dict(self._records.load_all())
        for entry in self.root.iterdir():
            if entry != self.tmp and entry.name not in self._plugins:
                log.info("removing %s: no plugin record names it (a crash mid-way?)", entry)
                fsutil.remove_tree(entry)

    # reading -------------------------------------------------------------------------
    def list(self) -> list[ManagedPlugin]:
        return sorted(self._plugins.values(), key=lambda p: p.name)

    def get(self, name_or_id: str) -> ManagedPlugin:
        """dockerd's lookup: full ID, name (tag `latest` by default), unique ID prefix."""
        if is_full_id(name_or_id) and not name_or_id.startswith("sha256:"):
            found = self._plugins.get(name_or_id)
            if found is None:
                raise NotFound(f'plugin "{name_or_id}" not found')
            return found
        try:
            ref = parse(name_or_id)
        except InvalidParameter:
            raise NotFound(f'plugin "{name_or_id}" not found') from None
        if ref.digest is None:
            for plugin in self._plugins.values():
                if plugin.name == ref.familiar():
                    return plugin
        else:
            raise NotFound(f'plugin "{name_or_id}" not found')
        matches = [p for i, p in self._plugins.items() if i.startswith(name_or_id)]
        if len(matches) > 1:
            raise InvalidParameter(f'multiple plugins found for "{name_or_id}"')
        if not matches:
            raise NotFound(f'plugin "{name_or_id}" not found')
        return matches[0]

    def rootfs(self, plugin: ManagedPlugin) -> Path:
        return self.root / plugin.id / "rootfs"

    # changes -------------------------------------------------------------------------
    async def create(self, repo_name: str, chunks: AsyncIterable[bytes]) -> ManagedPlugin:
        """`POST /plugins/create?name=`: the upload's rootfs and config.json as a plugin."""
        try:
            ref = parse(repo_name)
        except InvalidParameter as exc:
            raise InvalidParameter(f"failed to parse reference {repo_name}: {exc.message}") \
                from None
        if ref.digest is not None:
            raise InvalidParameter("canonical references are not permitted")
        name = ref.familiar()
        self._refuse_taken(name)  # fast: before the upload
        work = self.tmp / secrets.token_hex(8)
        upload = work.with_suffix(".tar")
        try:
            await trio.to_thread.run_sync(lambda: work.mkdir(parents=True))
            with await trio.to_thread.run_sync(lambda: open(upload, "wb")) as f:
                await write_in_batches(chunks, f.write)
            data = await trio.to_thread.run_sync(_unpack_sync, upload, work / "rootfs")
            config = parse_config(data)
            plugin = ManagedPlugin(id=ids.new_id(), name=name, config=config,
                                   settings=PluginSettings.initial(config), reference=name)
            async with self._lock:
                self._refuse_taken(name)
                final = self.root / plugin.id
                await trio.to_thread.run_sync(work.rename, final)
                await self._records.save(plugin.id, plugin)  # from here on it exists
                self._plugins[plugin.id] = plugin
            return plugin
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_remove_all, [upload, work])

    def _refuse_taken(self, name: str) -> None:
        if any(p.name == name for p in self._plugins.values()):
            raise Conflict(f"plugin {name} already exists")

    async def remove(self, name_or_id: str, *, force: bool) -> ManagedPlugin:
        async with self._lock:
            plugin = self.get(name_or_id)
            if plugin.enabled and not force:
                raise Conflict(f"plugin {plugin.name} is enabled")
            await self._records.delete(plugin.id)  # from here on it is gone
            del self._plugins[plugin.id]
        await trio.to_thread.run_sync(fsutil.remove_tree, self.root / plugin.id)
        return plugin

    async def enable(self, name_or_id: str) -> ManagedPlugin:
        plugin = self.get(name_or_id)
        if plugin.enabled:
            raise Conflict(f"plugin already enabled: plugin {plugin.name} is enabled")
        raise Unsupported(
            f"plugin {plugin.name} cannot be enabled: moord stores managed plugins but does "
            "not run them yet (docs/plugins.md)")

    async def disable(self, name_or_id: str, *, force: bool) -> ManagedPlugin:
        plugin = self.get(name_or_id)
        del force  # no plugin runs, so none is in use
        if not plugin.enabled:
            raise Conflict(f"plugin is already disabled: plugin {plugin.name} found but disabled")
        async with self._lock:
            plugin.enabled = False
            await self._records.save(plugin.id, plugin)
        return plugin


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            fsutil.remove_tree(path)
        else:
            path.unlink(missing_ok=True)


__all__ = ["ManagedPlugin", "PluginSettings", "PluginStore"]
