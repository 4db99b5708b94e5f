"""Where a registry name leads: mirrors, HTTPS, and plain HTTP for insecure registries.

Docker's rules: `docker.io` is served by `registry-1.docker.io`, after any mirrors
(tried in order, each falling through to the next on failure). Other registries
speak HTTPS; a registry named in `insecure-registries` (a host, `host:port` or a
CIDR), or one on a loopback address (`127.0.0.0/8`, `::1`, as Docker allows by
default), is tried over HTTPS without certificate checks and then over plain HTTP.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import attrs

from engine.images.reference import DEFAULT_DOMAIN

DOCKER_HUB_URL = "https://registry-1.docker.io"
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@attrs.frozen
class Endpoint:
    """One base URL to try for a registry."""

    url: str
    mirror: bool = False
    verify_tls: bool = True


def _normalise_mirror(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"https://{url}"


def _host_only(domain: str) -> str:
    if domain.startswith("["):
        return domain[1:].partition("]")[0]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


@attrs.define
class RegistryHosts:
    """The daemon's registry settings (`registry-mirrors`, `insecure-registries`)."""

    mirrors: Sequence[str] = ()
    insecure: Sequence[str] = ()

    def is_insecure(self, domain: str) -> bool:
        """Named insecure (host or host:port), or its address is in an insecure network."""
        if domain in self.insecure or _host_only(domain) in self.insecure:
            return True
        networks = list(_LOOPBACK)
        for item in self.insecure:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                continue
        host = _host_only(domain)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            if host != "localhost" and "." not in host:
                return False
            try:
                infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            except OSError:
                return False
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        return any(a in n for a in addresses for n in networks)

    def endpoints(self, domain: str) -> list[Endpoint]:
        """The base URLs to try for `domain`, in order. May resolve the host: blocking."""
        if domain == DEFAULT_DOMAIN:
            out = [Endpoint(_normalise_mirror(m), mirror=True,
                            verify_tls=not self.is_insecure(_normalise_mirror(m).split("://")[1]))
                   for m in self.mirrors]
            return [*out, Endpoint(DOCKER_HUB_URL)]
        if self.is_insecure(domain):
            return [Endpoint(f"https://{domain}", verify_tls=False), Endpoint(f"http://{domain}")]
        return [Endpoint(f"https://{domain}")]


__all__ = ["DOCKER_HUB_URL", "Endpoint", "RegistryHosts"]
