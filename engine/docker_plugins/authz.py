"""Docker authorization plugins: `AuthZPlugin.AuthZReq` before every API request is
handled and `AuthZPlugin.AuthZRes` before its answer goes out (`--authorization-plugin`).

The plugins are asked in the order configured; the first that does not allow wins. As
with dockerd, a plugin's refusal (`Allow: false` with its `Msg`, or its `Err`) is a 403
"authorization denied by plugin NAME: MSG", and a plugin that cannot be asked is a 500
"plugin NAME failed with error: …", so a broken plugin never lets a request through.
The API server decides which bodies a plugin sees (`engine/api/authorization.py`:
JSON of at most 1 MiB, dockerd's rule); they travel base64-encoded, as Go encodes
`[]byte`.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from engine.docker_plugins.client import PluginError, PluginUnreachable
from engine.docker_plugins.registry import AUTHZ, PluginRegistry
from engine.errors import Forbidden, SystemFailure

log = logging.getLogger(__name__)

def _bytes(body: bytes | None) -> str | None:
    return base64.b64encode(body).decode() if body else None


@attrs.frozen
class AuthzChain:
    """The configured authorization plugins, asked in order about each request."""

    registry: PluginRegistry
    names: Sequence[str]

    async def _ask(self, method: str, payload: Mapping[str, Any]) -> None:
        for name in self.names:
            try:
                plugin = await self.registry.get(name, AUTHZ)
                answer = await plugin.client.call(method, payload)
            except PluginError as exc:
                if isinstance(exc, PluginUnreachable):
                    self.registry.forget(name)  # found and activated afresh next time
                # a 200 answer with `Err` is the plugin's refusal (dockerd: a 403 too)
                if exc.status == 200 and exc.message:
                    raise Forbidden(f"authorization denied by plugin {name}: {exc.message}") from None
                raise SystemFailure(f"plugin {name} failed with error: {method}: "
                                    f"{exc.message}") from None
            if not answer.get("Allow"):
                message = str(answer.get("Msg") or "")
                log.info("authorization plugin %s denied %s %s: %s", name,
                         payload.get("RequestMethod"), payload.get("RequestURI"), message)
                raise Forbidden(f"authorization denied by plugin {name}: {message}")

    async def authorize_request(self, method: str, uri: str, headers: Mapping[str, str],
                                body: bytes | None) -> None:
        """Raise Forbidden (403) or SystemFailure (500) unless every plugin allows it."""
        await self._ask("AuthZPlugin.AuthZReq", _request(method, uri, headers, body))

    async def authorize_response(self, method: str, uri: str, headers: Mapping[str, str],
                                 body: bytes | None, status: int,
                                 response_headers: Mapping[str, str],
                                 response_body: bytes | None) -> None:
        """The same for the answer, before it is sent."""
        payload = _request(method, uri, headers, body)
        payload.update(ResponseStatusCode=status, ResponseHeaders=dict(response_headers),
                       ResponseBody=_bytes(response_body))
        await self._ask("AuthZPlugin.AuthZRes", payload)


def _request(method: str, uri: str, headers: Mapping[str, str], body: bytes | None) -> dict[str, Any]:
    # No TLS on a unix socket: no user, as dockerd without client certificates.
    return {"User": "", "UserAuthNMethod": "", "RequestMethod": method, "RequestURI": uri,
            "RequestBody": _bytes(body), "RequestHeaders": dict(headers),
            "RequestPeerCertificates": None}
