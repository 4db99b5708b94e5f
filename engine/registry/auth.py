"""Registry credentials and challenges: who we are to a registry, and what it asks for.

Credentials come, in order, from the request (`X-Registry-Auth`, which the docker CLI
fills from its `~/.docker/config.json`) and else from the daemon user's own
`~/.docker/config.json` (`$DOCKER_CONFIG/config.json`), so a pull started by a restart
policy or a client without credentials still reaches a private registry `moor login`
was used for. Registries answer `401` with a `WWW-Authenticate` challenge: `Basic`
(send the password) or `Bearer` (fetch a token from the realm for a scope).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from pathlib import Path
from typing import Any

import attrs

from engine.errors import InvalidParameter
from engine.images.reference import DEFAULT_DOMAIN

#: The key docker.io credentials are stored under in config.json.
INDEX_SERVER = "https://index.docker.io/v1/"

_PARAM = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@attrs.frozen
class Credentials:
    """What a user gave to authenticate: a password, or a token a login returned."""

    username: str = ""
    password: str = attrs.field(default="", repr=False)
    identity_token: str = attrs.field(default="", repr=False)
    registry_token: str = attrs.field(default="", repr=False)

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token
                    or self.registry_token)


@attrs.frozen
class Challenge:
    """One `WWW-Authenticate` challenge: the scheme and its parameters."""

    scheme: str
    params: dict[str, str] = attrs.field(factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """`Bearer realm="…",service="…",scope="…"` (or `Basic realm="…"`) → challenges."""
    out: list[Challenge] = []
    text = header.strip()
    while text:
        scheme, _, rest = text.partition(" ")
        params: dict[str, str] = {}
        pos = 0
        while pos < len(rest):
            m = _PARAM.match(rest, pos)
            if m is None:
                break
            value = m.group(2) if m.group(2) is not None else m.group(3)
            params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
            pos = m.end()
        out.append(Challenge(scheme.lower(), params))
        text = rest[pos:].strip()
        if not text or text == rest.strip():
            break
    return out


def _from_json(doc: Any) -> Credentials:
    if not isinstance(doc, dict):
        raise InvalidParameter("invalid X-Registry-Auth header: not a JSON object")
    return Credentials(
        username=str(doc.get("username") or ""),
        password=str(doc.get("password") or ""),
        identity_token=str(doc.get("identitytoken") or doc.get("IdentityToken") or ""),
        registry_token=str(doc.get("registrytoken") or ""),
    )


def _b64decode(text: str) -> bytes:
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    try:
        return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        return base64.b64decode(padded)


def decode_registry_auth(header: str | None) -> Credentials | None:
    """The `X-Registry-Auth` header: base64url JSON of an AuthConfig; `e30=` is `{}`."""
    if not header:
        return None
    try:
        doc = json.loads(_b64decode(header))
    except (binascii.Error, ValueError):
        raise InvalidParameter("invalid X-Registry-Auth header: not base64 JSON") from None
    creds = _from_json(doc)
    return None if creds.empty else creds


def config_key(host: str) -> str:
    """The key a registry's credentials have in config.json (docker.io has its legacy URL)."""
    return INDEX_SERVER if host in ("docker.io", "index.docker.io", "registry-1.docker.io") else host


def _normalise_key(key: str) -> str:
    bare = re.sub(r"^https?://", "", key).split("/", 1)[0]
    return config_key(bare) if bare in ("index.docker.io", "docker.io") else bare


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(base) / "config.json"


def credentials_from_config(host: str, path: Path | None = None) -> Credentials | None:
    """The credentials `docker login` / `moor login` stored for `host`, if any.

    Only inline entries (`auths.<host>.auth`) are read; credential helpers are
    programs the daemon does not run on a client's behalf.
    """
    try:
        doc = json.loads((path or docker_config_path()).read_bytes())
    except (OSError, ValueError):
        return None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    wanted = config_key(host)
    for key, entry in auths.items():
        if _normalise_key(str(key)) != wanted or not isinstance(entry, dict):
            continue
        username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
        if entry.get("auth"):
            try:
                username, _, password = _b64decode(str(entry["auth"])).decode().partition(":")
            except (UnicodeDecodeError, binascii.Error, ValueError):
                continue
        creds = Credentials(username, password, str(entry.get("identitytoken") or ""))
        return None if creds.empty else creds
    return None


def basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


__all__ = [
    "INDEX_SERVER",
    "Challenge",
    "Credentials",
    "basic_header",
    "config_key",
    "credentials_from_config",
    "decode_registry_auth",
    "docker_config_path",
    "parse_challenges",
]


def server_domain(server: str) -> str:
    """`https://index.docker.io/v1/`, `myreg:5000`, `http://myreg:5000/v2/` → the host."""
    bare = re.sub(r"^https?://", "", server.strip()).split("/", 1)[0]
    if bare in ("", "index.docker.io", "registry-1.docker.io", "docker.io"):
        return DEFAULT_DOMAIN
    return bare
