"""Registry failures keep their cause in dockerd's words, and `GET /distribution/{name}/json`
(docker-py's `inspect_distribution`) against the tests' own registry.

The plain-HTTP registry "not listed as insecure" is busybox's `httpd` in a container this
test makes: its address is not loopback (which Docker always treats as insecure), and
test traffic still goes only to a container the test made.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator

import docker
import pytest

from tests.support.daemon import Moord
from tests.support.registry import (
    Registry,
    make_image,
    make_layer_tar,
    push_multiarch_index,
    registry,
    token_registry,
)

__all__ = ["registry", "token_registry"]

pytestmark = pytest.mark.integration

HTTP_TO_HTTPS = "http: server gave HTTP response to HTTPS client"


@pytest.fixture
def plain_http_registry(moord: Moord) -> Iterator[str]:
    """host:port of a plain HTTP server in a container (busybox httpd)."""
    name = f"httpd-{secrets.token_hex(3)}"
    moord.docker("run", "-d", "--name", name, "busybox", "httpd", "-f", "-p", "8080", "-h", "/tmp")
    try:
        ip = moord.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).stdout.strip()
        for _ in range(100):
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex((ip, 8080)) == 0:
                    break
            time.sleep(0.05)
        yield f"{ip}:8080"
    finally:
        moord.docker("rm", "-f", name)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_plain_http_registry_not_listed_as_insecure(moord: Moord, plain_http_registry: str) -> None:
    ref = f"{plain_http_registry}/some/image:1"
    pulled = moord.docker("pull", ref, check=False)
    assert pulled.returncode == 1
    assert (f'Error response from daemon: Get "https://{plain_http_registry}/v2/some/image/'
            f'manifests/1": {HTTP_TO_HTTPS}') in pulled.stderr
    moord.docker("tag", "busybox", ref)
    try:
        pushed = moord.docker("push", ref, check=False)
        assert pushed.returncode == 1
        assert HTTP_TO_HTTPS in pushed.stderr
    finally:
        moord.docker("rmi", ref)
    client = docker.DockerClient(base_url=moord.host, timeout=60)
    try:
        with pytest.raises(docker.errors.APIError) as info:
            client.images.pull(ref)
        assert info.value.status_code == 500  # dockerd's: an unknown error
        assert HTTP_TO_HTTPS in str(info.value.explanation)
        with pytest.raises(docker.errors.APIError) as info:
            client.api.inspect_distribution(ref)
        assert info.value.status_code == 500
        assert HTTP_TO_HTTPS in str(info.value.explanation)
    finally:
        client.close()


def test_connection_refused_keeps_its_words(moord: Moord) -> None:
    port = _closed_port()
    pulled = moord.docker("pull", f"127.0.0.1:{port}/x:1", check=False)
    assert pulled.returncode == 1
    # loopback is insecure, so HTTPS then plain HTTP are tried: the last failure is told
    assert (f'Get "http://127.0.0.1:{port}/v2/x/manifests/1": dial tcp 127.0.0.1:{port}: '
            "connect: connection refused") in pulled.stderr
    login = moord.docker("login", "-u", "u", "-p", "p", f"127.0.0.1:{port}", check=False)
    assert login.returncode == 1
    assert f"dial tcp 127.0.0.1:{port}: connect: connection refused" in login.stderr


# /distribution/{name}/json ------------------------------------------------------------


def test_inspect_distribution_of_an_image(moord: Moord, registry: Registry) -> None:
    repo = f"dist-{secrets.token_hex(3)}"
    for fmt in ("oci", "docker"):
        pushed = make_image(registry, repo, fmt, [make_layer_tar({"/f": fmt.encode()})],
                            platform="linux/arm64/v8", manifest_format=fmt)
        client = docker.APIClient(base_url=moord.host, timeout=60)
        try:
            info = client.inspect_distribution(pushed.ref)
            assert info["Descriptor"] == {"mediaType": pushed.media_type,
                                          "digest": pushed.digest, "size": len(pushed.manifest)}
            assert info["Platforms"] == [{"architecture": "arm64", "os": "linux",
                                          "variant": "v8"}]
            by_digest = client.inspect_distribution(pushed.digest_ref)
            assert by_digest == info
        finally:
            client.close()


def test_inspect_distribution_of_an_index(moord: Moord, registry: Registry) -> None:
    index = push_multiarch_index(registry, f"distx-{secrets.token_hex(3)}", "v1")
    client = docker.DockerClient(base_url=moord.host, timeout=60)
    try:
        data = client.images.get_registry_data(index.ref)
        assert data.id == index.digest
        assert data.attrs["Descriptor"]["mediaType"] == index.media_type
        assert [(p["os"], p["architecture"], p.get("variant", "")) for p in data.attrs["Platforms"]] \
            == [("linux", "amd64", ""), ("linux", "arm64", ""), ("linux", "arm", "v7")]
        assert data.has_platform("linux/arm/v7")
        assert not data.has_platform("linux/s390x")
    finally:
        client.close()


def test_inspect_distribution_errors(moord: Moord, registry: Registry,
                                     token_registry: Registry) -> None:
    client = docker.APIClient(base_url=moord.host, timeout=60)
    try:
        with pytest.raises(docker.errors.NotFound) as info:
            client.inspect_distribution(f"{registry.host}/never-pushed:v1")
        assert "manifest unknown" in str(info.value.explanation)
        with pytest.raises(docker.errors.APIError) as info:
            client.inspect_distribution("sha256:" + "a" * 64)
        assert info.value.status_code == 500
        assert "no manifest found for full image ID" in str(info.value.explanation)
        with pytest.raises(docker.errors.APIError) as info:
            client.inspect_distribution(f"{registry.host}/UPPER:v1")
        assert info.value.status_code == 400
        # without credentials a token registry refuses: its own words and code
        with pytest.raises(docker.errors.APIError) as info:
            client.inspect_distribution(f"{token_registry.host}/private/x:v1")
        assert info.value.status_code in (401, 403, 404)
    finally:
        client.close()
