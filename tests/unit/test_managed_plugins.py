"""The managed-plugin store: config.json read as Go reads it, the archive split into
config and rootfs, dockerd's name lookup and refusals, and crash leftovers."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.errors import Conflict, InvalidParameter, NotFound, Unsupported
from engine.managed_plugins.config import parse_config
from engine.managed_plugins.store import PluginStore

CONFIG = {
    "description": "Dummy", "documentation": "https://example.invalid/doc",
    "entrypoint": ["/dummy"], "network": {"type": "host"},
    "interface": {"types": ["docker.volumedriver/1.0"], "socket": "dummy.sock"},
    "env": [{"name": "DEBUG", "settable": ["value"], "value": "0"}, {"name": "UNSET"}],
    "Args": {"Name": "args", "Value": ["-v"]},
}


def plugin_tar(config: dict[str, object] | None = CONFIG, *, rootfs: bool = True,
               extra: tuple[tuple[str, bytes], ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        members: list[tuple[str, bytes | None]] = []
        if config is not None:
            members.append(("config.json", json.dumps(config).encode()))
        if rootfs:
            members += [("rootfs", None), ("rootfs/dummy", None), ("rootfs/dummy/file.txt", b"hi")]
        members += list(extra)
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is not None and data.startswith(b"L"):  # a hard link to data[1:]
                info.type = tarfile.LNKTYPE
                info.linkname = data[1:].decode()
                tar.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def store(tmp_path: Path) -> PluginStore:
    return await PluginStore.open(tmp_path)


def test_config_keys_are_matched_as_go_matches_them() -> None:
    config = parse_config(json.dumps(CONFIG).encode())
    assert config.entrypoint == ("/dummy",)
    assert config.interface_types == ("docker.volumedriver/1.0",)
    assert config.capabilities_offered == ("volumedriver",)
    assert config.network_type == "host"
    assert [e.value for e in config.env] == ["0", None]
    assert config.args.value == ("-v",)
    for bad, words in ((b"[]", "not a JSON object"), (b"{", "failed to parse config"),
                       (b'{"entrypoint": "x"}', "Entrypoint must be a list of strings"),
                       (b'{"User": {"UID": -1}}', "User.UID must be a uint32")):
        with pytest.raises(InvalidParameter) as info:
            parse_config(bad)
        assert words in info.value.message


async def test_create_list_get_remove(store: PluginStore) -> None:
    plugin = await store.create("docker-sdk-py/dummy", chunks(plugin_tar()))
    assert plugin.name == "docker-sdk-py/dummy:latest"
    assert plugin.reference == plugin.name
    assert not plugin.enabled
    assert plugin.settings.env == ("DEBUG=0",)
    assert plugin.settings.args == ("-v",)
    assert (store.rootfs(plugin) / "dummy" / "file.txt").read_bytes() == b"hi"
    assert not (store.rootfs(plugin) / "config.json").exists()
    for name in ("docker-sdk-py/dummy", "docker-sdk-py/dummy:latest",
                 "docker.io/docker-sdk-py/dummy:latest", plugin.id, plugin.id[:10]):
        assert store.get(name) is plugin, name
    assert store.list() == [plugin]
    with pytest.raises(NotFound, match='plugin "docker-sdk-py/dummy:v2" not found'):
        store.get("docker-sdk-py/dummy:v2")
    with pytest.raises(Conflict, match="plugin docker-sdk-py/dummy:latest already exists"):
        await store.create("docker-sdk-py/dummy:latest", chunks(plugin_tar()))
    with pytest.raises(Unsupported, match="cannot be enabled"):
        await store.enable("docker-sdk-py/dummy")
    with pytest.raises(Conflict, match="plugin is already disabled: plugin "
                                       "docker-sdk-py/dummy:latest found but disabled"):
        await store.disable(plugin.id, force=False)
    reopened = await PluginStore.open(store.root.parent)
    assert reopened.get(plugin.id).config == plugin.config
    assert reopened.get(plugin.id).settings == plugin.settings
    await store.remove("docker-sdk-py/dummy", force=False)
    assert store.list() == []
    assert not (store.root / plugin.id).exists()


@pytest.mark.parametrize(("name", "data", "error", "words"), [
    ("x/y", plugin_tar(None), InvalidParameter, "config not found"),
    ("x/y", plugin_tar(rootfs=False), InvalidParameter, "no rootfs found"),
    ("x/y", b"garbage", InvalidParameter, "invalid plugin archive"),
    ("x/y", plugin_tar(extra=(("rootfs/h", b"L../../../escape"),)), InvalidParameter,
     "points outside"),
    ("x/Y", plugin_tar(), InvalidParameter, "failed to parse reference x/Y"),
    ("x/y@sha256:" + "a" * 64, plugin_tar(), InvalidParameter,
     "canonical references are not permitted"),
])
async def test_bad_uploads_leave_nothing(store: PluginStore, name: str, data: bytes,
                                         error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        await store.create(name, chunks(data))
    assert words in str(info.value)
    assert store.list() == []
    assert [p.name for p in store.root.iterdir()] == ["tmp"]
    assert list(store.tmp.iterdir()) == []
    assert not (store.root.parent / "escape").exists()


async def test_members_outside_rootfs_are_skipped(store: PluginStore) -> None:
    """As dockerd's split: only config.json and rootfs/… count; `rootfs/../x` is `x`."""
    data = plugin_tar(extra=(("rootfs/../../escape", b"x"), ("README", b"r")))
    plugin = await store.create("x/y", chunks(data))
    assert sorted(p.name for p in store.rootfs(plugin).iterdir()) == ["dummy"]
    assert not (store.root.parent / "escape").exists()


async def test_ambiguous_prefixes(store: PluginStore) -> None:
    a = await store.create("a/one", chunks(plugin_tar()))
    b = await store.create("a/two", chunks(plugin_tar()))
    common = ""
    for x, y in zip(a.id, b.id, strict=True):
        if x != y:
            break
        common += x
    if common:
        with pytest.raises(InvalidParameter, match="multiple plugins found"):
            store.get(common)
    with pytest.raises(NotFound):
        store.get("zz-no-such")


async def test_a_directory_without_a_record_is_removed_at_start(tmp_path: Path) -> None:
    store = await PluginStore.open(tmp_path)
    leftover = store.root / ("f" * 64) / "rootfs"
    leftover.mkdir(parents=True)
    (store.tmp / "half").mkdir()
    await PluginStore.open(tmp_path)
    assert [p.name for p in store.root.iterdir()] == ["tmp"]
    assert list(store.tmp.iterdir()) == []
