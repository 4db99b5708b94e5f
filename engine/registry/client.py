"""The OCI distribution protocol over httpx on trio: one `Repository` per image name.

A `Repository` picks its endpoint on first use (mirrors, then the registry; HTTPS,
then HTTP for insecure registries) and remembers it. Authentication is lazy, as the
protocol intends: a request goes out with whatever authorisation is cached; a `401`
challenge fetches a token for the repository's scopes (or sends the password for a
`Basic` challenge) and the request is sent once more. Tokens are cached per realm,
service, scopes and user until shortly before they expire.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import trio

import engine
from engine.errors import EngineError, Forbidden, InvalidParameter, NotFound, SystemFailure, Unauthorized
from engine.images.reference import Reference
from engine.registry import transport_errors
from engine.registry.auth import Challenge, Credentials, basic_header, parse_challenges
from engine.registry.endpoints import Endpoint, RegistryHosts

_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
# An insecure registry is tried over TLS first; a plain-HTTP server that never answers
# the handshake must not hold the pull for the full connect timeout.
_INSECURE_TIMEOUT = httpx.Timeout(60.0, connect=2.0)
_TOKEN_MARGIN = 10.0  # renew a token this many seconds before it expires


@attrs.frozen
class RegistryErrorDetail:
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code.lower().replace('_', ' ')}: {self.message}"


def registry_errors(response: httpx.Response) -> list[RegistryErrorDetail]:
    """The `{"errors": [{code, message}]}` body registries send with failures."""
    try:
        doc = json.loads(response.content or b"{}")
    except ValueError:
        return []
    raw = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(raw, list):
        return []
    return [RegistryErrorDetail(str(e.get("code", "UNKNOWN")), str(e.get("message", "")))
            for e in raw if isinstance(e, dict)]


def describe_failure(response: httpx.Response) -> str:
    errors = registry_errors(response)
    if errors:
        return "; ".join(str(e) for e in errors)
    return f"{response.status_code} {response.reason_phrase}".strip()


async def read_limited(response: httpx.Response, limit: int, what: str) -> bytes:
    """A streamed response's whole body, refused past `limit` bytes (manifests, configs)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > limit:
            raise InvalidParameter(f"{what} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class RegistryUnreachable(SystemFailure):
    """No endpoint of the registry answered (dockerd's 500, its words: see
    `transport_errors`)."""


@attrs.define
class _Token:
    value: str
    expires: float


class RegistryClient:
    """The daemon's one HTTP client pool for every registry, and its token cache."""

    def __init__(self, hosts: RegistryHosts) -> None:
        self.hosts = hosts
        headers = {"User-Agent": f"moorage/{engine.__version__}"}
        self._secure = httpx.AsyncClient(timeout=_TIMEOUT, follow_redirects=True,
                                         headers=headers)
        self._unverified = httpx.AsyncClient(timeout=_INSECURE_TIMEOUT, follow_redirects=True,
                                             headers=headers, verify=False)
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._endpoints: dict[str, list[Endpoint]] = {}
        self._preferred: dict[str, Endpoint] = {}

    async def aclose(self) -> None:
        await self._secure.aclose()
        await self._unverified.aclose()

    def rehost(self, hosts: RegistryHosts) -> None:
        """Use new registry settings; the endpoints found with the old ones are forgotten."""
        self.hosts = hosts
        self._endpoints.clear()
        self._preferred.clear()

    def http_for(self, endpoint: Endpoint) -> httpx.AsyncClient:
        return self._secure if endpoint.verify_tls else self._unverified

    async def endpoints(self, domain: str) -> list[Endpoint]:
        """The endpoints to try for `domain`, the one that answered last time first."""
        found = self._endpoints.get(domain)
        if found is None:
            found = await trio.to_thread.run_sync(self.hosts.endpoints, domain)
            self._endpoints[domain] = found
        preferred = self._preferred.get(domain)
        if preferred is not None and preferred in found and not preferred.mirror:
            return [preferred, *[e for e in found if e != preferred]]
        return found

    def remember(self, domain: str, endpoint: Endpoint) -> None:
        self._preferred[domain] = endpoint

    def repository(self, ref: Reference, credentials: Credentials | None,
                   actions: Sequence[str] = ("pull",),
                   extra_scopes: Sequence[str] = ()) -> Repository:
        return Repository(self, ref, credentials, tuple(actions), tuple(extra_scopes))

    # tokens ----------------------------------------------------------------------
    async def token(self, endpoint: Endpoint, challenge: Challenge, scopes: Sequence[str],
                    credentials: Credentials | None) -> str:
        """A bearer token from the challenge's realm for `scopes` (cached until expiry)."""
        realm = challenge.params.get("realm", "")
        if not realm:
            raise Unauthorized("registry asked for a token without saying where to get it")
        service = challenge.params.get("service", "")
        # keyed by the whole credentials, not the user name: a wrong password must not
        # reuse a token a right one earned
        secret = hashlib.sha256(repr(attrs.astuple(credentials)).encode()).hexdigest() \
            if credentials is not None else ""
        key = (realm, service, secret, *sorted(scopes))
        cached = self._tokens.get(key)
        if cached is not None and cached.expires > time.monotonic():
            return cached.value
        if credentials is not None and credentials.registry_token:
            return credentials.registry_token
        http = self.http_for(endpoint)
        params: list[tuple[str, str | int | float | bool | None]] = (
            [("service", service)] if service else [])
        params += [("scope", s) for s in scopes]
        refresh = credentials is not None and bool(credentials.identity_token)
        try:
            if credentials is not None and refresh:
                form = {k: str(v) for k, v in params}
                form.update(grant_type="refresh_token", refresh_token=credentials.identity_token,
                            client_id="moorage", scope=" ".join(scopes))
                response = await http.post(realm, data=form)
            else:
                headers = {}
                if credentials is not None and credentials.username:
                    params.append(("account", credentials.username))
                    headers["Authorization"] = basic_header(credentials)
                response = await http.get(realm, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryUnreachable(
                await transport_errors.explain(exc, "POST" if refresh else "GET", realm)
            ) from None
        if response.status_code in (401, 403):
            raise Unauthorized(
                f"Get \"{realm}\": unauthorized: {_token_error(response) or 'incorrect username or password'}"
            )
        if response.status_code != 200:
            raise SystemFailure(f"token server {realm} answered {response.status_code}")
        try:
            doc = response.json()
            value = str(doc.get("token") or doc.get("access_token") or "")
            lifetime = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = "", 0.0
        if not value:
            raise SystemFailure(f"token server {realm} answered without a token")
        self._tokens[key] = _Token(value, time.monotonic() + max(lifetime - _TOKEN_MARGIN, 1.0))
        return value


def _token_error(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(doc, dict):
        for key in ("details", "detail", "message", "error"):
            if doc.get(key):
                return str(doc[key])
        errors = doc.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", ""))
    return ""


_NETWORK_ERRORS = (httpx.TransportError,)


class Repository:
    """One repository on one registry, as seen by one pull or push."""

    def __init__(self, client: RegistryClient, ref: Reference, credentials: Credentials | None,
                 actions: tuple[str, ...], extra_scopes: tuple[str, ...]) -> None:
        self.client = client
        self.ref = ref
        self.credentials = credentials
        self.scopes = (f"repository:{ref.path}:{','.join(actions)}", *extra_scopes)
        self.endpoint: Endpoint | None = None
        self._authorization: str | None = None

    @property
    def base(self) -> str:
        assert self.endpoint is not None
        path = self.ref.path
        if self.endpoint.mirror and "/" not in path:
            path = f"library/{path}"
        return f"{self.endpoint.url}/v2/{path}"

    async def _send(self, method: str, url: str, *, headers: dict[str, str],
                    content: Any = None, stream: bool = False,
                    params: dict[str, str] | None = None) -> httpx.Response:
        assert self.endpoint is not None
        http = self.client.http_for(self.endpoint)
        for attempt in range(2):
            sent = dict(headers)
            if self._authorization:
                sent["Authorization"] = self._authorization
            request = http.build_request(method, url, headers=sent, content=content, params=params)
            response = await http.send(request, stream=stream)
            if response.status_code != 401 or attempt == 1 or not self._can_retry(content):
                return response
            challenge_header = response.headers.get("www-authenticate", "")
            await response.aclose()
            await self._authorise(parse_challenges(challenge_header))
        raise AssertionError("unreachable")

    @staticmethod
    def _can_retry(content: Any) -> bool:
        return content is None or isinstance(content, bytes)

    async def _authorise(self, challenges: list[Challenge]) -> None:
        assert self.endpoint is not None
        for challenge in challenges:
            if challenge.scheme == "bearer":
                scopes = list(self.scopes)
                wanted = challenge.params.get("scope")
                if wanted and wanted not in scopes:
                    scopes.append(wanted)
                token = await self.client.token(self.endpoint, challenge, scopes, self.credentials)
                self._authorization = f"Bearer {token}"
                return
            if challenge.scheme == "basic":
                if self.credentials is None or not self.credentials.username:
                    raise Unauthorized("unauthorized: authentication required")
                self._authorization = basic_header(self.credentials)
                return
        raise Unauthorized("unauthorized: authentication required")

    async def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                      content: Any = None, stream: bool = False,
                      params: dict[str, str] | None = None) -> httpx.Response:
        """`method` on `<base>/<path>` (or an absolute URL), choosing the endpoint if needed."""
        headers = headers or {}
        if self.endpoint is not None:
            url = path if "://" in path else f"{self.base}/{path}"
            try:
                return await self._send(method, url, headers=headers, content=content,
                                        stream=stream, params=params)
            except _NETWORK_ERRORS as exc:
                raise RegistryUnreachable(await transport_errors.explain(exc, method, url)) \
                    from None
        last_failure = ""  # as dockerd, the error of the last endpoint tried is the one told
        endpoints = await self.client.endpoints(self.ref.domain)
        for index, endpoint in enumerate(endpoints):
            self.endpoint = endpoint
            url = f"{self.base}/{path}"
            try:
                response = await self._send(method, url, headers=headers, content=content,
                                            stream=stream, params=params)
            except _NETWORK_ERRORS as exc:
                last_failure = await transport_errors.explain(exc, method, url)
                continue
            except EngineError:
                if endpoint.mirror and index + 1 < len(endpoints):
                    continue
                raise
            if endpoint.mirror and response.status_code >= 400 and index + 1 < len(endpoints):
                await response.aclose()
                last_failure = f"mirror {endpoint.url}: {response.status_code}"
                continue
            self.client.remember(self.ref.domain, endpoint)
            return response
        self.endpoint = None
        raise RegistryUnreachable(last_failure or f"no endpoints found for {self.ref.familiar()}")

    @asynccontextmanager
    async def stream(self, path: str, headers: dict[str, str]) -> AsyncIterator[httpx.Response]:
        response = await self.request("GET", path, headers=headers, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def failure(self, response: httpx.Response, what: str) -> EngineError:
        """The engine error for a failed registry answer, in Docker's words."""
        await response.aread()
        detail = describe_failure(response)
        codes = {e.code for e in registry_errors(response)}
        status = response.status_code
        if status == 401 or codes & {"UNAUTHORIZED", "DENIED", "NAME_UNKNOWN"}:
            return NotFound(
                f"{what} access denied for {self.ref.repository}, repository does not exist "
                f"or may require 'docker login': {detail}"
            )
        if status == 404:
            return NotFound(f"{what}: {detail}")
        if status == 403:
            return Forbidden(f"{what}: {detail}")
        if status == 400:
            return InvalidParameter(f"{what}: {detail}")
        return SystemFailure(f"{what}: {detail}")


__all__ = [
    "RegistryClient",
    "RegistryErrorDetail",
    "RegistryUnreachable",
    "Repository",
    "describe_failure",
    "read_limited",
    "registry_errors",
]
