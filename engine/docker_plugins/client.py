"""Calling one Docker plugin: `POST /Kind.Method` with a JSON body, as dockerd does.

Docker's rules kept here:

- requests carry `Accept: application/vnd.docker.plugins.v1.2+json` (and that content
  type); answers are JSON whatever type they say;
- a call that cannot reach the plugin (no socket yet, connection refused: it is
  starting or restarting) is retried with a doubling back-off (1 s, 2 s, 4 s …) until
  the wait runs out; an answer is never retried (the plugin may have acted on it);
- a non-200 answer is an error carrying the plugin's `Err` (or its body); a 200 answer
  whose `Err` is set is an error too (how most plugins report a refusal).

Every call has a deadline: the whole call, retries included, is under
`trio.fail_after`, and the I/O is trio's (httpx on a unix socket), so a plugin that
hangs delays only the request that needed it, never the event loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
import trio

from engine.docker_plugins.discovery import Endpoint

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
#: The largest answer read from a plugin (a `List` of many volumes fits easily).
MAX_ANSWER = 16 * 1024 * 1024


class PluginError(Exception):
    """A plugin answered with an error; `message` is the plugin's own words."""

    def __init__(self, plugin: str, method: str, message: str, status: int = 0) -> None:
        super().__init__(f"{plugin}: {method}: {message}")
        self.plugin = plugin
        self.method = method
        self.message = message
        self.status = status


class PluginUnreachable(PluginError):
    """The plugin did not answer within the deadline (not running, hung, gone)."""


def backoff(retries: int, cap: float) -> float:
    """Docker's delay before retry number `retries` (0-based): 1 s doubling, at most `cap`."""
    return float(min(2 ** retries, max(cap, 1.0)))


def decode(plugin: str, method: str, status: int, body: bytes) -> dict[str, Any]:
    """The answer as a JSON object, or the PluginError it carries."""
    try:
        doc = json.loads(body) if body.strip() else {}
    except json.JSONDecodeError:
        doc = None
    if status != 200:
        if isinstance(doc, dict) and doc.get("Err"):
            raise PluginError(plugin, method, str(doc["Err"]), status)
        text = body.decode(errors="replace").strip() or f"HTTP {status}"
        raise PluginError(plugin, method, text, status)
    if not isinstance(doc, dict):
        raise PluginError(plugin, method, "the answer is not a JSON object", status)
    if doc.get("Err"):
        raise PluginError(plugin, method, str(doc["Err"]), status)
    return doc


@attrs.define(eq=False)
class PluginClient:
    """One plugin's HTTP client; `timeout` bounds every call (retries included)."""

    endpoint: Endpoint
    timeout: float = 30.0

    def _client(self) -> httpx.AsyncClient:
        if self.endpoint.socket:
            transport = httpx.AsyncHTTPTransport(uds=self.endpoint.socket)
            base = "http://plugin"
        else:
            transport = httpx.AsyncHTTPTransport()
            base = self.endpoint.url
        return httpx.AsyncClient(transport=transport, base_url=base,
                                 timeout=httpx.Timeout(self.timeout), trust_env=False)

    async def call(self, method: str, payload: Mapping[str, Any] | None = None, *,
                   retry: bool = True, limit: float | None = None) -> dict[str, Any]:
        """`POST /method` with `payload`; the answer's JSON object.

        Raises PluginUnreachable when the plugin could not be reached (after retrying
        within the deadline when `retry`), PluginError when it answered with an error.
        """
        limit = self.timeout if limit is None else limit
        body = json.dumps(dict(payload or {})).encode()
        headers = {"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE}
        name = self.endpoint.name
        last = "no attempt"
        deadline = trio.current_time() + limit
        try:
            with trio.fail_after(limit):
                async with self._client() as client:
                    retries = 0
                    while True:
                        try:
                            async with client.stream("POST", f"/{method}", content=body,
                                                     headers=headers) as response:
                                answer = await _read(response)
                            return decode(name, method, response.status_code, answer)
                        except (httpx.ConnectError, httpx.RemoteProtocolError, OSError) as exc:
                            last = str(exc) or type(exc).__name__
                            delay = backoff(retries, limit)
                            if not retry or trio.current_time() + delay >= deadline:
                                raise PluginUnreachable(name, method, f"cannot reach the plugin "
                                                        f"at {self.endpoint.address}: {last}") from None
                            log.info("plugin %s: %s: %s; retrying in %.0f s", name, method, last,
                                     delay)
                            retries += 1
                            await trio.sleep(delay)
        except trio.TooSlowError:
            raise PluginUnreachable(name, method, f"no answer from {self.endpoint.address} "
                                    f"within {limit:g} s (last: {last})") from None
        except httpx.TimeoutException:
            raise PluginUnreachable(name, method, f"no answer from {self.endpoint.address} "
                                    f"within {limit:g} s") from None
        except httpx.HTTPError as exc:
            raise PluginError(name, method, f"HTTP: {exc}") from None


async def _read(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER:
            raise httpx.DecodingError(f"the answer is larger than {MAX_ANSWER} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
