"""`local`: named volumes as directories under `<data-root>/volumes/NAME/_data`.

Registered by `volume_drivers.builtins`, through the hook a third-party package uses.

Options (`docker volume create -o KEY=VALUE`, `--mount volume-opt=KEY=VALUE`):

- `uid`, `gid`, `mode`: owner and permissions of the volume's root directory, so a
  container that runs as a non-root user can write to a new volume (Docker's local
  driver makes it root-owned 0755 and leaves users to chown it from a root container).
  Numbers only (`uid=1000`, `mode=0770`): user names mean nothing on the host.
- Docker's `type`, `device`, `o`: mount `device` (of filesystem `type`, with mount(8)
  options `o`) on the volume's directory while a container uses it, exactly as the
  mount(8) command line `mount -t TYPE -o O DEVICE DIR` would. The common ones:
  `type=tmpfs,device=tmpfs,o=size=64m` (memory-backed, emptied when the last user
  stops) and `type=none,o=bind,device=/srv/data` (a host directory under a volume
  name). For tmpfs, `uid`/`gid`/`mode` become tmpfs's own mount options; for any other
  mounted volume they are applied to the mounted root after each mount.
- `size` (Docker's quota option) is refused: there is no quota support here.

The options live in `NAME/opts.json` (written atomically), so a mount after a moord
restart uses the same ones. Blocking work (mkdir, chown, mount) runs in worker threads.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import trio

from engine import fsutil
from engine.kernel import mounts
from engine.units import ram_in_bytes
from plugins.volume_contract import (
    LOCAL_SCOPE,
    InvalidVolumeOption,
    VolumeCapabilities,
    VolumeDriverError,
    VolumeInfo,
    VolumeNotFoundError,
)

DATA_DIR = "_data"
OPTIONS_FILE = "opts.json"
LOCAL_OPTIONS = ("type", "device", "o", "size", "uid", "gid", "mode")
_REQUIRED_WITH = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_MAX_ID = 2**32 - 2


def _number(options: Mapping[str, str], key: str) -> int | None:
    value = options.get(key)
    if value is None:
        return None
    try:
        number = int(value, 10)
    except ValueError:
        raise InvalidVolumeOption(
            f"invalid {key} option {value!r}: a number is needed (user names cannot be "
            "looked up on the host)") from None
    if not 0 <= number <= _MAX_ID:
        raise InvalidVolumeOption(f"invalid {key} option {value!r}: out of range")
    return number


def _mode(options: Mapping[str, str]) -> int | None:
    value = options.get("mode")
    if value is None:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        raise InvalidVolumeOption(
            f"invalid mode option {value!r}: an octal number such as 0755 is needed") from None
    if not 0 <= mode <= 0o7777:
        raise InvalidVolumeOption(f"invalid mode option {value!r}: at most 07777")
    return mode


@attrs.frozen
class Ownership:
    """What `uid`, `gid` and `mode` ask for the volume's root (None: leave it)."""

    uid: int | None = None
    gid: int | None = None
    mode: int | None = None

    @classmethod
    def of(cls, options: Mapping[str, str]) -> Ownership:
        return cls(_number(options, "uid"), _number(options, "gid"), _mode(options))

    def apply(self, path: Path) -> None:
        if self.uid is not None or self.gid is not None:
            os.chown(path, -1 if self.uid is None else self.uid, -1 if self.gid is None else self.gid)
        if self.mode is not None:
            os.chmod(path, self.mode)

    def tmpfs_data(self) -> list[str]:
        words = []
        if self.uid is not None:
            words.append(f"uid={self.uid}")
        if self.gid is not None:
            words.append(f"gid={self.gid}")
        if self.mode is not None:
            words.append(f"mode={self.mode:o}")
        return words


def validate_options(options: Mapping[str, str]) -> dict[str, str]:
    """Docker's rules for its local options, and ours for uid/gid/mode."""
    for key in options:
        if key not in LOCAL_OPTIONS:
            raise InvalidVolumeOption(f'invalid option: "{key}"')
    for key, needed in _REQUIRED_WITH.items():
        if key in options:
            for other in needed:
                if other not in options:
                    raise InvalidVolumeOption(f'missing required option: "{other}"')
    if "size" in options:
        try:
            size = ram_in_bytes(options["size"])
        except ValueError:
            raise InvalidVolumeOption(f"invalid size: '{options['size']}'") from None
        if size > 0:
            raise InvalidVolumeOption("quota size requested but no quota support")
    Ownership.of(options)
    mount_options = mounts.parse_options(options.get("o", ""))
    if mount_options.is_bind and not options.get("device", "").startswith("/"):
        raise InvalidVolumeOption(
            f"invalid device {options.get('device', '')!r} for a bind-style volume: "
            "an absolute host path is needed")
    return dict(options)


def _needs_mount(options: Mapping[str, str]) -> bool:
    return bool(options.get("type") or options.get("device"))


@attrs.define(eq=False)
class LocalDriver:
    """The built-in driver; `root` is `<data-root>/volumes`."""

    root: Path
    name: str = "local"
    scope: str = LOCAL_SCOPE

    def capabilities(self) -> VolumeCapabilities:
        return VolumeCapabilities(scope=LOCAL_SCOPE, populate=True)

    def validate(self, options: Mapping[str, str]) -> dict[str, str]:
        return validate_options(options)

    # layout -------------------------------------------------------------------
    def volume_dir(self, name: str) -> Path:
        if not _NAME.match(name):
            raise VolumeNotFoundError(name)
        return self.root / name

    def data_path(self, name: str) -> Path:
        return self.volume_dir(name) / DATA_DIR

    def _options(self, name: str) -> dict[str, str]:
        try:
            raw = json.loads((self.volume_dir(name) / OPTIONS_FILE).read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise VolumeDriverError(f"volume {name}: unreadable {OPTIONS_FILE}: {exc}") from None
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def _info(self, name: str) -> VolumeInfo:
        directory = self.volume_dir(name)
        try:
            st = os.stat(directory)
        except FileNotFoundError:
            raise VolumeNotFoundError(name) from None
        if not (directory / DATA_DIR).is_dir():
            raise VolumeNotFoundError(name)
        created = dt.datetime.fromtimestamp(st.st_ctime, dt.timezone.utc)
        return VolumeInfo(name=name, mountpoint=str(directory / DATA_DIR), created=created)

    # the contract -----------------------------------------------------------------
    async def create(self, name: str, options: Mapping[str, str]) -> VolumeInfo:
        checked = self.validate(options)
        return await trio.to_thread.run_sync(self._create_sync, name, checked)

    def _create_sync(self, name: str, options: dict[str, str]) -> VolumeInfo:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o701)  # others may reach a volume's data by its full path only
        directory = self.volume_dir(name)
        try:
            directory.mkdir(mode=0o755)
        except FileExistsError:
            raise VolumeDriverError(f"volume already exists under {directory}") from None
        try:
            if options:
                fsutil.atomic_write(directory / OPTIONS_FILE, json.dumps(options).encode(),
                                    mode=0o600)
            data = directory / DATA_DIR
            data.mkdir(mode=0o755)
            os.chmod(data, 0o755)  # not narrowed by moord's umask
            if not _needs_mount(options):
                Ownership.of(options).apply(data)
            fsutil.fsync_dir(directory)
            fsutil.fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return self._info(name)

    async def remove(self, name: str) -> None:
        await trio.to_thread.run_sync(self._remove_sync, name)

    def _remove_sync(self, name: str) -> None:
        directory = self.volume_dir(name)
        if not directory.exists():
            raise VolumeNotFoundError(name)
        for point in mounts.mounts_under(directory):
            # moord only removes volumes no container uses: a mount left here is one a
            # crash left behind. Never delete through a mount (a bind-style volume's
            # device is the user's own directory).
            try:
                mounts.unmount(point)
            except OSError as exc:
                raise VolumeDriverError(f"unmounting {point}: {exc.strerror}") from None
        if mounts.mounts_under(directory):
            raise VolumeDriverError(f"{directory} still has mounts below it; not removing it")
        try:
            fsutil.remove_tree(directory)
        except OSError as exc:
            raise VolumeDriverError(f"removing {directory}: {exc.strerror or exc}") from None
        fsutil.fsync_dir(self.root)

    async def mount(self, name: str, container_id: str) -> str:
        return await trio.to_thread.run_sync(self._mount_sync, name)

    def _mount_sync(self, name: str) -> str:
        data = self.data_path(name)
        if not data.is_dir():
            raise VolumeNotFoundError(name)
        options = self._options(name)
        if not _needs_mount(options) or mounts.is_mountpoint(data):
            return str(data)
        ownership = Ownership.of(options)
        fstype = options.get("type", "")
        mount_options = mounts.parse_options(options.get("o", ""))
        if fstype == "tmpfs":
            extra = ",".join(ownership.tmpfs_data())
            data_words = ",".join(w for w in (mount_options.data, extra) if w)
            mount_options = attrs.evolve(mount_options, data=data_words)
        device = options.get("device", "")
        try:
            mounts.mount(device, data, "" if fstype == "none" else fstype, mount_options)
        except OSError as exc:
            shown = ",".join(w for w in options.get("o", "").split(",") if not w.startswith("password="))
            raise VolumeDriverError(
                f"failed to mount local volume: mount {device}:{data}, "
                f"flags: {mount_options.flags:#x}, data: {shown}: {exc.strerror}") from None
        if fstype != "tmpfs":
            try:
                ownership.apply(data)
            except OSError as exc:
                mounts.unmount(data)
                raise VolumeDriverError(f"volume {name}: applying uid/gid/mode: {exc.strerror}") \
                    from None
        return str(data)

    async def unmount(self, name: str, container_id: str) -> None:
        await trio.to_thread.run_sync(self._unmount_sync, name)

    def _unmount_sync(self, name: str) -> None:
        data = self.data_path(name)
        if not _needs_mount(self._options(name)):
            return
        try:
            mounts.unmount(data)
        except OSError as exc:
            raise VolumeDriverError(f"unmounting local volume {name}: {exc.strerror}") from None

    async def path(self, name: str) -> str:
        return (await self.get(name)).mountpoint

    async def list(self) -> Sequence[VolumeInfo]:
        return await trio.to_thread.run_sync(self._list_sync)

    def _list_sync(self) -> builtins.list[VolumeInfo]:
        if not self.root.is_dir():
            return []
        found = []
        for entry in sorted(self.root.iterdir()):
            if not _NAME.match(entry.name):
                continue
            try:
                found.append(self._info(entry.name))
            except VolumeNotFoundError:
                continue
        return found

    async def get(self, name: str) -> VolumeInfo:
        return await trio.to_thread.run_sync(self._info, name)


__all__ = ["LOCAL_OPTIONS", "LocalDriver", "Ownership", "validate_options"]
