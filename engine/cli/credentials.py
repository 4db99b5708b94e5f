"""The client's side of registry credentials: `~/.docker/config.json`, as docker keeps it.

`moor login` checks credentials with the daemon (`POST /auth`) and stores them here
in docker's format, so `docker` and `moor` share logins; pull and push send them to
the daemon as `X-Registry-Auth` (base64url JSON). Credential helpers (`credsStore`)
are not run: entries they hold are invisible to moor.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from engine.registry.auth import config_key, credentials_from_config, docker_config_path, server_domain


def registry_auth_header(domain: str, path: Path | None = None) -> str:
    """`X-Registry-Auth` for `domain`: its stored credentials, or `{}`."""
    creds = credentials_from_config(domain, path)
    doc: dict[str, str] = {}
    if creds is not None:
        doc = {"username": creds.username, "password": creds.password,
               "serveraddress": config_key(domain)}
        if creds.identity_token:
            doc["identitytoken"] = creds.identity_token
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a JSON object")
    return doc


def _save(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent="\t")
        f.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def store_login(server: str, username: str, password: str, identity_token: str = "",
                path: Path | None = None) -> Path:
    """Record a successful login; returns the file written (docker prints it)."""
    target = path or docker_config_path()
    doc = _load(target)
    auths = doc.setdefault("auths", {})
    key = config_key(server_domain(server))
    entry: dict[str, str] = {}
    if identity_token:
        entry["auth"] = base64.b64encode(f"{username}:".encode()).decode()
        entry["identitytoken"] = identity_token
    else:
        entry["auth"] = base64.b64encode(f"{username}:{password}".encode()).decode()
    auths[key] = entry
    _save(target, doc)
    return target


def forget_login(server: str, path: Path | None = None) -> bool:
    """Drop a stored login; whether there was one."""
    target = path or docker_config_path()
    doc = _load(target)
    auths = doc.get("auths") or {}
    key = config_key(server_domain(server))
    found = [k for k in auths if config_key(server_domain(k)) == key]
    for k in found:
        del auths[k]
    if found:
        _save(target, doc)
    return bool(found)


__all__ = ["forget_login", "registry_auth_header", "store_login"]
