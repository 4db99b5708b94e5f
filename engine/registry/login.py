"""`docker login`: check credentials against a registry before the client stores them.

As dockerd does: ask `/v2/` on the registry's first working endpoint; a `Basic`
challenge is answered with the password, a `Bearer` one by fetching a token (no
scope) from its realm. Success is a `200` from `/v2/` with that authorisation.
"""

from __future__ import annotations

import httpx

from engine.errors import InvalidParameter, Unauthorized
from engine.registry import transport_errors
from engine.registry.auth import Credentials, basic_header, parse_challenges, server_domain
from engine.registry.client import RegistryClient, RegistryUnreachable


async def login(client: RegistryClient, server: str, credentials: Credentials) -> str:
    if not credentials.username and not credentials.identity_token:
        raise InvalidParameter("Username and password are required")
    domain = server_domain(server)
    last_failure = ""  # the last endpoint's, as dockerd tells it
    for endpoint in await client.endpoints(domain):
        if endpoint.mirror:
            continue
        http = client.http_for(endpoint)
        url = f"{endpoint.url}/v2/"
        try:
            response = await http.get(url)
            if response.status_code == 401:
                challenges = parse_challenges(response.headers.get("www-authenticate", ""))
                headers = {}
                for challenge in challenges:
                    if challenge.scheme == "bearer":
                        token = await client.token(endpoint, challenge, [], credentials)
                        headers["Authorization"] = f"Bearer {token}"
                        break
                    if challenge.scheme == "basic":
                        headers["Authorization"] = basic_header(credentials)
                        break
                response = await http.get(url, headers=headers)
        except httpx.TransportError as exc:
            last_failure = await transport_errors.explain(exc, "GET", url)
            continue
        if response.status_code == 200:
            client.remember(domain, endpoint)
            return ""
        raise Unauthorized(
            f"login attempt to {url} failed with status: {response.status_code} "
            f"{response.reason_phrase}"
        )
    raise RegistryUnreachable(last_failure or f"no endpoint for {domain}")


__all__ = ["login"]
