"""Docker's JSON for networks, read as dockerd reads it: IPv6 fields, IPAM options kept as
sent, and path parameters percent-decoded (a network named `test 01`)."""

from __future__ import annotations

import pytest

from engine.api.http import RawResponse, Request
from engine.api.router import Router
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


async def test_path_parameters_are_percent_decoded() -> None:
    router = Router()

    @router.route("GET", "/networks/{id}")
    async def show(req: Request, engine: object) -> RawResponse:
        return RawResponse(req.params["id"].encode())

    found = router.match("GET", "/networks/test%2001")
    assert found is not None
    assert found[1] == {"id": "test 01"}
