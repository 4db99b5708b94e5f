"""Docker's plugin protocol against a fake plugin on a unix socket: discovery, the
content type, errors, retries while the plugin is not up, and the deadline on a call."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from engine.docker_plugins.client import (
    CONTENT_TYPE,
    PluginClient,
    PluginError,
    PluginUnreachable,
    backoff,
)
from engine.docker_plugins.discovery import Endpoint, PluginDirs, PluginSpecError, find, scan
from engine.docker_plugins.registry import PluginLacksKind, PluginNotFound, PluginRegistry
from tests.support.fake_plugin import serve_plugin, serve_plugin_tcp

# The fake plugin's files are made from the test task: blocking is fine here.


def _dirs(tmp_path: Path) -> PluginDirs:
    return PluginDirs(tmp_path / "run", (tmp_path / "etc", tmp_path / "lib"))


def _ok(method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if method == "Plugin.Activate":
        return 200, {"Implements": ["VolumeDriver"]}
    return 200, {"Echo": body, "Method": method}


def _listening_socket(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return sock


# discovery ----------------------------------------------------------------------------
def test_a_socket_in_the_socket_directory_is_found(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    flat = _listening_socket(dirs.socket_dir / "one.sock")
    nested = _listening_socket(dirs.socket_dir / "two" / "two.sock")
    try:
        assert find("one", dirs) == Endpoint("one", socket=str(dirs.socket_dir / "one.sock"),
                                             source=str(dirs.socket_dir / "one.sock"))
        two = find("two", dirs)
        assert two is not None
        assert two.socket == str(dirs.socket_dir / "two" / "two.sock")
        assert find("three", dirs) is None
        assert scan(dirs) == ["one", "two"]
    finally:
        flat.close()
        nested.close()


def test_spec_and_json_files_name_the_address(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    dirs.spec_dirs[0].mkdir(parents=True)
    dirs.spec_dirs[1].mkdir(parents=True)
    (dirs.spec_dirs[0] / "a.spec").write_text("unix:///run/a/a.sock\n")
    (dirs.spec_dirs[1] / "b.json").write_text(json.dumps({"Name": "b", "Addr": "tcp://127.0.0.1:8080"}))
    (dirs.spec_dirs[1] / "c.spec").write_text("ftp://nowhere")
    a = find("a", dirs)
    assert a is not None
    assert a.socket == "/run/a/a.sock"
    assert a.address == "unix:///run/a/a.sock"
    b = find("b", dirs)
    assert b is not None
    assert b.url == "http://127.0.0.1:8080"
    with pytest.raises(PluginSpecError, match=r"c\.spec.*not a unix:// or tcp://"):
        find("c", dirs)
    assert scan(dirs) == ["a", "b", "c"]


def test_names_that_are_not_file_names_are_never_looked_up(tmp_path: Path) -> None:
    assert find("../etc/passwd", _dirs(tmp_path)) is None
    assert find("", _dirs(tmp_path)) is None


def test_the_back_off_doubles_up_to_the_cap() -> None:
    assert [backoff(r, 30) for r in range(7)] == [1, 2, 4, 8, 16, 30, 30]


# the client ---------------------------------------------------------------------------
async def test_a_call_posts_json_with_dockers_content_type(tmp_path: Path) -> None:
    sock = tmp_path / "p.sock"
    with serve_plugin(sock, _ok) as server:
        client = PluginClient(Endpoint("p", socket=str(sock)), timeout=10)
        answer = await client.call("VolumeDriver.Get", {"Name": "v"})
    assert answer == {"Echo": {"Name": "v"}, "Method": "VolumeDriver.Get"}
    method, headers, body = server.requests[0]
    assert method == "VolumeDriver.Get"
    assert body == {"Name": "v"}
    assert headers["Accept"] == CONTENT_TYPE
    assert headers["Content-Type"] == CONTENT_TYPE


async def test_the_plugins_err_is_the_error_whatever_the_status(tmp_path: Path) -> None:
    answers = {"A": (200, {"Err": "volume not found"}), "B": (500, {"Err": "disk full"}),
               "C": (404, {})}
    sock = tmp_path / "p.sock"
    with serve_plugin(sock, lambda m, _b: answers[m]):
        client = PluginClient(Endpoint("p", socket=str(sock)), timeout=10)
        with pytest.raises(PluginError, match="A: volume not found") as a:
            await client.call("A")
        with pytest.raises(PluginError, match="B: disk full") as b:
            await client.call("B")
        with pytest.raises(PluginError, match=r"C: \{\}"):
            await client.call("C")
    assert (a.value.status, b.value.status, b.value.message) == (200, 500, "disk full")


async def test_an_unreachable_plugin_fails_within_the_deadline(tmp_path: Path) -> None:
    client = PluginClient(Endpoint("gone", socket=str(tmp_path / "gone.sock")), timeout=0.5)
    with pytest.raises(PluginUnreachable, match="cannot reach the plugin at unix://"):
        await client.call("Plugin.Activate")


async def test_a_plugin_that_comes_up_late_is_retried(tmp_path: Path) -> None:
    """Connection refused (a socket file nobody listens on yet) is retried with back-off."""
    sock = tmp_path / "late.sock"
    bound = _listening_socket(sock)  # bound, not listening: connect is refused

    def come_up() -> None:
        time.sleep(0.3)
        bound.close()
        with serve_plugin(sock, _ok):
            time.sleep(5)

    threading.Thread(target=come_up, daemon=True).start()
    client = PluginClient(Endpoint("late", socket=str(sock)), timeout=15)
    assert (await client.call("Plugin.Activate"))["Implements"] == ["VolumeDriver"]


async def test_a_plugin_that_hangs_is_cut_off_at_the_deadline(tmp_path: Path) -> None:
    release = threading.Event()

    def hang(_m: str, _b: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        release.wait(30)
        return 200, {}

    sock = tmp_path / "hung.sock"
    with serve_plugin(sock, hang):
        client = PluginClient(Endpoint("hung", socket=str(sock)), timeout=0.5)
        try:
            with pytest.raises(PluginUnreachable, match=r"no answer .* within 0\.5 s"):
                await client.call("VolumeDriver.Mount", {"Name": "v"})
        finally:
            release.set()


# the registry -------------------------------------------------------------------------
async def test_a_plugin_is_activated_once_and_kept(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    with serve_plugin(dirs.socket_dir / "vol.sock", _ok) as server:
        registry = PluginRegistry(dirs, timeout=10)
        first = await registry.get("vol", "VolumeDriver")
        again = await registry.get("vol", "VolumeDriver")
        with pytest.raises(PluginLacksKind, match="implements VolumeDriver, not NetworkDriver"):
            await registry.get("vol", "NetworkDriver")
    assert first is again
    assert first.implements == ("VolumeDriver",)
    assert [m for m, _h, _b in server.requests] == ["Plugin.Activate"]
    assert [p.name for p in registry.active()] == ["vol"]
    registry.forget("vol")
    assert registry.active() == []


async def test_the_registry_waits_for_a_plugin_that_appears(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    registry = PluginRegistry(dirs, timeout=15)
    async with trio.open_nursery() as nursery:
        async def appear() -> None:
            await trio.sleep(0.3)
            with serve_plugin(dirs.socket_dir / "slow.sock", _ok):
                await trio.sleep(5)

        nursery.start_soon(appear)
        plugin = await registry.get("slow", "VolumeDriver")
        nursery.cancel_scope.cancel()
    assert plugin.endpoint.socket == str(dirs.socket_dir / "slow.sock")


async def test_a_plugin_that_never_appears_is_not_found_after_the_wait(tmp_path: Path) -> None:
    registry = PluginRegistry(_dirs(tmp_path), timeout=0.5)
    with pytest.raises(PluginNotFound, match="plugin 'absent' not found"):
        await registry.get("absent", "VolumeDriver")


async def test_spec_files_lead_to_the_plugin_on_a_socket_or_over_tcp(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    dirs.spec_dirs[0].mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere" / "s.sock"
    (dirs.spec_dirs[0] / "s.spec").write_text(f"unix://{elsewhere}\n")
    registry = PluginRegistry(dirs, timeout=10)
    with serve_plugin(elsewhere, _ok), serve_plugin_tcp(_ok) as tcp:
        host, port = tcp.server_address[:2]
        (dirs.spec_dirs[0] / "t.json").write_text(json.dumps({"Name": "t", "Addr": f"tcp://{host}:{port}"}))
        by_spec = await registry.get("s", "VolumeDriver")
        by_json = await registry.get("t", "VolumeDriver")
        assert (await by_json.client.call("VolumeDriver.List"))["Method"] == "VolumeDriver.List"
    assert by_spec.endpoint.socket == str(elsewhere)
    assert by_json.endpoint.url == f"http://{host}:{port}"
    assert [m for m, _h, _b in tcp.requests] == ["Plugin.Activate", "VolumeDriver.List"]
