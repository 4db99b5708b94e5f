"""Authorization plugins against fake ones: the request and answer they are shown, a
refusal as dockerd words it, a broken plugin never letting a request through, and the
request body replayed to the handler after the plugin saw it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from engine.api.authorization import authorize
from engine.api.http import JSONResponse, Request, Response
from engine.docker_plugins.authz import AuthzChain
from engine.docker_plugins.discovery import PluginDirs
from engine.docker_plugins.registry import PluginRegistry
from engine.errors import Forbidden, SystemFailure
from tests.support.fake_plugin import serve_plugin


def _plugin(verdicts: dict[str, dict[str, Any]]) -> Any:
    def answer(method: str, _body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "Plugin.Activate":
            return 200, {"Implements": ["authz"]}
        return 200, verdicts.get(method, {"Allow": True})
    return answer


class _Chunks:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def next_chunk(self) -> bytes | None:
        return self.chunks.pop(0) if self.chunks else None


def _request(body: bytes, content_type: str = "application/json") -> Request:
    return Request("POST", "/v1.41/containers/create", {}, {"content-type": content_type},
                   "1.41", _Chunks(body[:3], body[3:]))


async def _echo(request: Request) -> Response:
    return JSONResponse({"got": (await request.read_body()).decode()}, status=201)


async def test_the_plugin_sees_the_request_and_the_answer(tmp_path: Path) -> None:
    dirs = PluginDirs(tmp_path, ())
    registry = PluginRegistry(dirs, timeout=10)
    with serve_plugin(tmp_path / "watch.sock", _plugin({})) as plugin:
        response = await authorize(AuthzChain(registry, ["watch"]), _request(b'{"Image":"x"}'),
                                   "/v1.41/containers/create?name=a", _echo)
    assert response == JSONResponse({"got": '{"Image":"x"}'}, status=201)
    (_, _, req), (_, _, res) = plugin.requests[1:]
    assert req["RequestURI"] == "/v1.41/containers/create?name=a"
    assert req["RequestHeaders"] == {"Content-Type": "application/json"}
    assert base64.b64decode(req["RequestBody"]) == b'{"Image":"x"}'
    assert res["ResponseStatusCode"] == 201
    assert json.loads(base64.b64decode(res["ResponseBody"])) == {"got": '{"Image":"x"}'}


async def test_a_body_that_is_not_json_is_not_shown_but_still_handled(tmp_path: Path) -> None:
    registry = PluginRegistry(PluginDirs(tmp_path, ()), timeout=10)
    with serve_plugin(tmp_path / "watch.sock", _plugin({})) as plugin:
        response = await authorize(AuthzChain(registry, ["watch"]),
                                   _request(b"tar bytes", "application/x-tar"), "/build", _echo)
    assert response == JSONResponse({"got": "tar bytes"}, status=201)
    assert plugin.requests[1][2]["RequestBody"] is None


@pytest.mark.parametrize(("verdict", "words"), [
    ({"Allow": False, "Msg": "not on Sundays"}, "authorization denied by plugin p: not on Sundays"),
    ({"Allow": False, "Err": "policy file unreadable"},
     "authorization denied by plugin p: policy file unreadable"),
])
async def test_a_refusal_is_a_403_in_dockerds_words(tmp_path: Path, verdict: dict[str, Any],
                                                    words: str) -> None:
    registry = PluginRegistry(PluginDirs(tmp_path, ()), timeout=10)
    with serve_plugin(tmp_path / "p.sock", _plugin({"AuthZPlugin.AuthZReq": verdict})), \
            pytest.raises(Forbidden) as refused:
        await authorize(AuthzChain(registry, ["p"]), _request(b"{}"), "/x", _echo)
    assert refused.value.message == words


async def test_an_answer_can_be_refused_too(tmp_path: Path) -> None:
    registry = PluginRegistry(PluginDirs(tmp_path, ()), timeout=10)
    verdicts = {"AuthZPlugin.AuthZRes": {"Allow": False, "Msg": "that answer is secret"}}
    with serve_plugin(tmp_path / "p.sock", _plugin(verdicts)), \
            pytest.raises(Forbidden, match="that answer is secret"):
        await authorize(AuthzChain(registry, ["p"]), _request(b"{}"), "/x", _echo)


async def test_a_plugin_that_cannot_be_asked_lets_nothing_through(tmp_path: Path) -> None:
    registry = PluginRegistry(PluginDirs(tmp_path, ()), timeout=0.3)
    with pytest.raises(SystemFailure, match="plugin absent failed with error"):
        await authorize(AuthzChain(registry, ["absent"]), _request(b"{}"), "/x", _echo)
