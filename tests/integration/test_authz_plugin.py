"""A Docker authorization plugin written here: it denies `docker exec` with its own
message, and everything else still works.

The plugin is a small HTTP server on a unix socket in a private plugin directory
(`--plugin-socket-dir`), named by `--authorization-plugin`; moord asks it about every
request (AuthZReq) and every answer (AuthZRes).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.daemon import Moord
from tests.support.fake_plugin import serve_plugin

pytestmark = pytest.mark.integration

MESSAGE = "exec is switched off on this host by the no-exec policy"
EXEC = re.compile(r"^(/v[\d.]+)?/(containers/[^/]+/exec|exec/[^/]+/start)")


def no_exec(method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if method == "Plugin.Activate":
        return 200, {"Implements": ["authz"]}
    if method == "AuthZPlugin.AuthZReq" and body["RequestMethod"] == "POST" \
            and EXEC.match(body["RequestURI"]):
        return 200, {"Allow": False, "Msg": MESSAGE}
    return 200, {"Allow": True}


def test_an_authorization_plugin_denies_exec_and_allows_the_rest(
        fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    sockets = d.root / "plugins"
    with serve_plugin(sockets / "no-exec.sock", no_exec) as plugin:
        d.start("--plugin-socket-dir", str(sockets), "--plugin-spec-dir", str(d.root / "specs"),
                "--authorization-plugin", "no-exec")
        d.import_busybox()
        cid = d.docker("run", "-d", "--name", "guarded", "busybox", "sleep", "600").stdout.strip()
        assert d.docker("ps", "-q", "--no-trunc").stdout.split() == [cid]

        denied = d.docker("exec", "guarded", "true", check=False)
        assert denied.returncode != 0
        assert f"authorization denied by plugin no-exec: {MESSAGE}" in denied.stderr, denied.stderr

        assert d.docker("inspect", "-f", "{{.State.Running}}", "guarded").stdout.strip() == "true"
        plugins = json.loads(d.docker("info", "--format", "{{json .Plugins}}").stdout)
        assert plugins["Authorization"] == ["no-exec"]
        d.docker("volume", "create", "kept")
        d.docker("rm", "-f", "guarded")
        d.stop()  # while the plugin still answers (every request needs it)

    requests = [(m, b) for m, _h, b in plugin.requests]
    kinds = {m for m, _b in requests}
    assert kinds == {"Plugin.Activate", "AuthZPlugin.AuthZReq", "AuthZPlugin.AuthZRes"}
    creates = [b for m, b in requests if m == "AuthZPlugin.AuthZReq"
               and re.search(r"/containers/create", b["RequestURI"])]
    assert creates, "the plugin was not asked about the container's creation"
    sent = json.loads(base64.b64decode(creates[0]["RequestBody"]))
    assert sent["Cmd"] == ["sleep", "600"]
    assert creates[0]["RequestHeaders"]["Content-Type"].startswith("application/json")
    answers = [b for m, b in requests if m == "AuthZPlugin.AuthZRes"
               and re.search(r"/containers/create", b["RequestURI"])]
    assert answers[0]["ResponseStatusCode"] == 201
    assert json.loads(base64.b64decode(answers[0]["ResponseBody"]))["Id"] == cid
