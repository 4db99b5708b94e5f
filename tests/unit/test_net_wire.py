"""Docker's JSON for networks, read as dockerd reads it: IPv6 fields, IPAM options kept as
sent, and path parameters percent-decoded (a network named `test 01`)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from engine.api.http import RawResponse, Request
from engine.api.router import Router, route_table
from engine.api.server import APIServer
from engine.api.wire import networks as wire
from engine.errors import InvalidParameter
from engine.networks.model import EndpointRequest


def test_create_body_with_ipv6_and_ipam_options_as_sent() -> None:
    parsed = wire.parse_create({
        "Name": "six", "EnableIPv6": True,
        "IPAM": {"Driver": "default", "Config": [
            {"Subnet": "2001:db8:1::/64", "IPRange": "2001:db8:1::/96", "Gateway": "2001:db8:1::ffff"}]},
    })
    assert parsed["enable_ipv6"] is True
    assert parsed["ipam_options"] is None  # the SDK sends none: dockerd shows null
    [config] = parsed["ipam_configs"]
    assert config.ip_range == "2001:db8:1::/96"
    assert wire.parse_create({"Name": "x", "IPAM": {"Options": {}}})["ipam_options"] == {}
    with pytest.raises(InvalidParameter, match="EnableIPv6"):
        wire.parse_create({"Name": "x", "EnableIPv6": "yes"})


def test_endpoint_settings_with_ipv6_and_link_local() -> None:
    request = wire.parse_endpoint_request({"IPAMConfig": {
        "IPv6Address": "2001:db8:1::f00d", "LinkLocalIPs": ["169.254.8.8"]}})
    assert request == EndpointRequest(ipv6_address="2001:db8:1::f00d",
                                      link_local_ips=("169.254.8.8",))
    # inspect shows what the client set, and null when it set nothing
    assert wire._endpoint_ipam_json(request) == {"IPv6Address": "2001:db8:1::f00d",
                                                 "LinkLocalIPs": ["169.254.8.8"]}
    assert wire._endpoint_ipam_json(EndpointRequest()) is None


async def test_path_parameters_are_percent_decoded(tmp_path: Path) -> None:
    """The server decodes the path once, as Go's r.URL.Path: `test%2001` is `test 01`,
    and docker-py's `%40` is the `@` of a digest reference."""
    router = Router()

    @router.route("GET", "/networks/{id}")
    async def show(req: Request, engine: object) -> RawResponse:
        return RawResponse(req.params["id"].encode())

    server = APIServer(route_table([router]), None)  # type: ignore[arg-type]
    sock = tmp_path / "api.sock"

    def get(target: str) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(sock))
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data.split(b"\r\n\r\n", 1)[1]

    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: server.serve_unix(sock, task_status=task_status))
        assert await trio.to_thread.run_sync(get, "/networks/test%2001") == b"test 01"
        assert await trio.to_thread.run_sync(get, "/networks/a%40b%2520") == b"a@b%20"
        server.close()
