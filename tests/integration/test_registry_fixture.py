"""The registry fixtures themselves, without moord: each flavour challenges and accepts as a
real registry does, the push helpers leave pullable content, and the flaky proxy cuts a blob
download where told so a Range request can fetch the rest.

If these fail, the pull/push tests built on tests/support/registry.py can't be trusted.
"""

from __future__ import annotations

import gzip
import io
import json
import socket
import tarfile
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.support.registry import (
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    FlakyProxy,
    ManifestFormat,
    Registry,
    _challenge_params,
    basic_registry,
    flaky_proxy,
    fresh_registry,
    make_image,
    make_layer_tar,
    push_blob,
    push_multiarch_index,
    random_layers,
    registry,
    sha256_digest,
    token_registry,
)

# the fixtures come in by import (imported rather than via pytest_plugins, which would warn that
# the module was imported before pytest could rewrite its asserts)
__all__ = ["basic_registry", "flaky_proxy", "fresh_registry", "registry", "token_registry"]


def _repo(prefix: str = "fixture") -> str:
    return f"{prefix}/t-{uuid.uuid4().hex[:8]}"


def _token(reg: Registry, scope: str, auth: tuple[str, str] | None) -> str:
    assert reg.token_server is not None
    response = httpx.get(reg.token_server.realm, params={"service": reg.service, "scope": scope},
                         auth=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")
    return str(body["token"])


def _files_in(layer: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        out = {}
        for member in tar.getmembers():
            if member.isfile():
                f = tar.extractfile(member)
                assert f is not None
                out[member.name] = f.read()
        return out


def _download(url: str, into: bytearray) -> None:
    """Stream a GET into `into`, so what arrived before a cut is still there."""
    with httpx.stream("GET", url) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            into += chunk


def test_no_auth_registry_round_trip(registry: Registry) -> None:
    assert registry.host.startswith("127.0.0.1:")
    assert httpx.get(f"{registry.url}/v2/").status_code == 200
    repo = _repo()
    data = b"hello from the fixture\n"
    digest = push_blob(registry, repo, data)
    assert digest == sha256_digest(data)
    got = httpx.get(f"{registry.url}/v2/{repo}/blobs/{digest}")
    assert got.status_code == 200
    assert got.content == data
    assert registry.blob_path(digest).read_bytes() == data


def test_basic_auth_rejects_anonymous_and_accepts_the_user(basic_registry: Registry) -> None:
    anonymous = httpx.get(f"{basic_registry.url}/v2/")
    assert anonymous.status_code == 401
    scheme, params = _challenge_params(anonymous.headers["www-authenticate"])
    assert scheme == "basic"
    assert params["realm"]

    wrong = httpx.get(f"{basic_registry.url}/v2/", auth=(basic_registry.username, "not-it"))
    assert wrong.status_code == 401

    right = httpx.get(f"{basic_registry.url}/v2/",
                      auth=(basic_registry.username, basic_registry.password))
    assert right.status_code == 200

    repo = _repo()
    digest = push_blob(basic_registry, repo, b"basic blob")
    assert httpx.get(f"{basic_registry.url}/v2/{repo}/blobs/{digest}").status_code == 401
    got = httpx.get(f"{basic_registry.url}/v2/{repo}/blobs/{digest}",
                    auth=(basic_registry.username, basic_registry.password))
    assert got.content == b"basic blob"


def test_token_registry_challenges_and_honours_a_token(token_registry: Registry) -> None:
    reg = token_registry
    server = reg.token_server
    assert server is not None
    server.reset()
    repo = _repo()

    root = httpx.get(f"{reg.url}/v2/")
    assert root.status_code == 401
    scheme, params = _challenge_params(root.headers["www-authenticate"])
    assert scheme == "bearer"
    assert params["realm"] == server.realm
    assert params["service"] == reg.service

    start = httpx.post(f"{reg.url}/v2/{repo}/blobs/uploads/")
    assert start.status_code == 401
    header = start.headers["www-authenticate"]
    assert header.startswith(f'Bearer realm="{server.realm}",service="{reg.service}",scope=')
    _, params = _challenge_params(header)
    scope = params["scope"]
    assert scope.startswith(f"repository:{repo}:")
    assert set(scope.rsplit(":", 1)[1].split(",")) == {"pull", "push"}

    # bad credentials: the token server says no
    bad = httpx.get(server.realm, params={"service": reg.service, "scope": scope},
                    auth=(reg.username, "wrong"))
    assert bad.status_code == 401

    token = _token(reg, scope, (reg.username, reg.password))
    bearer = {"Authorization": f"Bearer {token}"}
    data = b"pushed with a bearer token\n"
    digest = sha256_digest(data)
    start = httpx.post(f"{reg.url}/v2/{repo}/blobs/uploads/", headers=bearer)
    assert start.status_code == 202, start.text
    location = start.headers["location"]
    sep = "&" if "?" in location else "?"
    put = httpx.put(f"{location}{sep}digest={digest}", content=data,
                    headers={**bearer, "Content-Type": "application/octet-stream"})
    assert put.status_code == 201, put.text
    got = httpx.get(f"{reg.url}/v2/{repo}/blobs/{digest}", headers=bearer)
    assert got.status_code == 200
    assert got.content == data

    # an anonymous token carries no access: the registry says insufficient_scope
    anon = _token(reg, f"repository:{repo}:pull", None)
    denied = httpx.get(f"{reg.url}/v2/{repo}/blobs/{digest}",
                       headers={"Authorization": f"Bearer {anon}"})
    assert denied.status_code == 401
    assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]

    # a token for another repository doesn't open this one
    other = _token(reg, f"repository:{_repo()}:pull", (reg.username, reg.password))
    assert httpx.get(f"{reg.url}/v2/{repo}/blobs/{digest}",
                     headers={"Authorization": f"Bearer {other}"}).status_code == 401

    # the server's record: four token requests, the scopes as asked, who asked
    assert server.count == 4
    assert server.scopes_seen[0] == scope
    assert [r.status for r in server.requests] == [401, 200, 200, 200]
    assert [r.user for r in server.requests] == [reg.username, reg.username, None, reg.username]
    assert server.requests[1].access == [{"type": "repository", "name": repo,
                                          "actions": scope.rsplit(":", 1)[1].split(",")}]
    assert server.requests[2].access == []


def test_token_registry_rejects_forged_tokens(token_registry: Registry) -> None:
    reg = token_registry
    server = reg.token_server
    assert server is not None
    repo = _repo()
    digest = push_blob(reg, repo, b"guarded")
    access = [{"type": "repository", "name": repo, "actions": ["pull"]}]
    url = f"{reg.url}/v2/{repo}/blobs/{digest}"
    good = server.issue(reg.username, access)
    assert httpx.get(url, headers={"Authorization": f"Bearer {good}"}).status_code == 200
    for bad in (server.issue(reg.username, access, issuer="someone-else"),
                server.issue(reg.username, access, audience="another-registry"),
                server.issue(reg.username, access, expires_in=-120),  # past the 60 s leeway
                good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")):
        response = httpx.get(url, headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_token_signed_with_a_libtrust_kid(fresh_registry: Callable[..., Registry]) -> None:
    reg = fresh_registry(auth="token", key_hint="kid", anonymous_pull=True)
    assert reg.token_server is not None
    assert len(reg.token_server.key_id.split(":")) == 12
    repo = _repo()
    digest = push_blob(reg, repo, b"kid-signed")
    # anonymous_pull: a client without credentials may read
    with reg.client(anonymous=True) as client:
        assert client.get(f"/v2/{repo}/blobs/{digest}").content == b"kid-signed"
        assert client.post(f"/v2/{repo}/blobs/uploads/").status_code == 401


def test_oauth2_password_grant(token_registry: Registry) -> None:
    reg = token_registry
    assert reg.token_server is not None
    form = {"grant_type": "password", "username": reg.username, "password": reg.password,
            "service": reg.service, "scope": "repository:x/y:pull", "client_id": "moorage-test"}
    ok = httpx.post(reg.token_server.realm, data=form)
    assert ok.status_code == 200
    assert ok.json()["access_token"]
    assert httpx.post(reg.token_server.realm, data={**form, "password": "no"}).status_code == 401


@pytest.mark.parametrize("manifest_format", ["oci", "docker"])
def test_multiarch_index(token_registry: Registry, manifest_format: ManifestFormat) -> None:
    reg = token_registry
    repo = _repo("multi")
    pushed = push_multiarch_index(reg, repo, "v1", manifest_format=manifest_format)
    assert set(pushed.images) == {"linux/amd64", "linux/arm64", "linux/arm/v7"}
    with reg.client() as client:
        got = client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == pushed.media_type
        assert got.headers["docker-content-digest"] == pushed.digest
        assert got.content == pushed.index
        index = json.loads(got.content)
        platforms = {(m["platform"]["os"], m["platform"]["architecture"],
                      m["platform"].get("variant")): m["digest"] for m in index["manifests"]}
        assert platforms[("linux", "arm", "v7")] == pushed.images["linux/arm/v7"].digest
        assert ("linux", "arm64", None) in platforms

        arm = pushed.images["linux/arm/v7"]
        manifest = client.get(f"/v2/{repo}/manifests/{arm.digest}",
                              headers={"Accept": MANIFEST_ACCEPT})
        assert manifest.status_code == 200
        assert manifest.content == arm.manifest
        config = json.loads(client.get(f"/v2/{repo}/blobs/{arm.config_digest}").content)
        assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm", "v7")
        assert config["rootfs"]["diff_ids"] == list(arm.diff_ids)
        layer = client.get(f"/v2/{repo}/blobs/{arm.layer_digests[0]}").content
        assert _files_in(layer) == {"platform.txt": b"linux/arm/v7\n"}
        assert sha256_digest(gzip.decompress(layer)) == arm.diff_ids[0]


def test_oci_index_needs_the_accept_header(registry: Registry) -> None:
    # registry 2.8 answers 404 MANIFEST_UNKNOWN for an OCI index the client didn't accept
    repo = _repo("multi")
    push_multiarch_index(registry, repo, "v1", platforms=["linux/amd64"])
    plain = httpx.get(f"{registry.url}/v2/{repo}/manifests/v1")
    assert plain.status_code == 404
    accepted = httpx.get(f"{registry.url}/v2/{repo}/manifests/v1", headers={"Accept": OCI_INDEX})
    assert accepted.status_code == 200
    assert accepted.headers["content-type"] == OCI_INDEX


def test_make_image_is_reproducible(registry: Registry) -> None:
    layers = random_layers(seed=7, count=3, size=64 * 1024)
    assert layers == random_layers(seed=7, count=3, size=64 * 1024)
    assert layers != random_layers(seed=8, count=3, size=64 * 1024)
    first = make_image(registry, _repo("bench"), "latest", layers, config={"Cmd": ["/bin/sh"]})
    second = make_image(registry, _repo("bench"), "latest", layers, config={"Cmd": ["/bin/sh"]})
    assert first.digest == second.digest
    assert len(first.layer_digests) == 3
    assert first.ref == f"{registry.host}/{first.repo}:latest"
    got = httpx.get(f"{registry.url}/v2/{first.repo}/manifests/latest",
                    headers={"Accept": OCI_MANIFEST})
    assert got.headers["docker-content-digest"] == first.digest
    assert make_layer_tar({"/a/b/c.txt": b"x"}) == make_layer_tar({"/a/b/c.txt": b"x"})
    with tarfile.open(fileobj=io.BytesIO(make_layer_tar({"/a/b/c.txt": b"x"}, gzip=False))) as tar:
        assert tar.getnames() == ["a", "a/b", "a/b/c.txt"]


def test_flaky_proxy_cuts_a_blob_and_range_fetches_the_rest(registry: Registry,
                                                            flaky_proxy: FlakyProxy) -> None:
    repo = _repo("flaky")
    data = random_layers(seed=1, count=1, size=1 << 20, gzip=False)[0]
    digest = push_blob(registry, repo, data)
    cut_at = 100_000
    flaky_proxy.arm(cut_at)
    url = f"{flaky_proxy.url}/v2/{repo}/blobs/{digest}"

    # HEAD and manifest-less traffic is untouched; the first blob GET is cut
    assert httpx.head(url).status_code == 200
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        _download(url, received)
    assert len(received) == cut_at
    assert bytes(received) == data[:cut_at]

    rest = httpx.get(url, headers={"Range": f"bytes={cut_at}-"})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes {cut_at}-{len(data) - 1}/{len(data)}"
    assert sha256_digest(bytes(received) + rest.content) == digest

    gets = flaky_proxy.blob_requests
    assert [(r.range, r.cut, r.status) for r in gets] == [(None, True, 200),
                                                          (f"bytes={cut_at}-", False, 206)]
    assert gets[0].body_bytes == cut_at
    assert gets[1].body_bytes == len(data) - cut_at
    assert [r.method for r in flaky_proxy.requests] == ["HEAD", "GET", "GET"]


def test_flaky_proxy_relays_pushes(registry: Registry, flaky_proxy: FlakyProxy) -> None:
    # uploads go through too (Location points back at the proxy), so a push test can use it
    repo = _repo("flaky")
    data = b"through the proxy" * 1000
    with registry.client(base_url=flaky_proxy.url) as client:
        start = client.post(f"/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202
        assert start.headers["location"].startswith(flaky_proxy.url)
        put = client.put(f"{start.headers['location']}&digest={sha256_digest(data)}", content=data)
        assert put.status_code == 201, put.text
    assert registry.blob_path(sha256_digest(data)).read_bytes() == data


def test_unsatisfiable_range_gets_a_416_with_the_blob_length(registry: Registry) -> None:
    """Registry 2.8 (Go 1.19's ServeContent after the registry set Content-Length) answers a
    Range starting at or past the end with 416 but keeps `Content-Length: <blob size>` over a
    short text body: a client sees the connection end early. Resuming clients must expect it."""
    repo = _repo()
    data = b"A" * 1000
    digest = push_blob(registry, repo, data)
    with socket.create_connection(("127.0.0.1", registry.port), timeout=10) as s:
        s.sendall(f"GET /v2/{repo}/blobs/{digest} HTTP/1.1\r\nHost: {registry.host}\r\n"
                  f"Range: bytes={len(data)}-\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert lines[0].startswith("HTTP/1.1 416")
    assert headers["content-range"] == f"bytes */{len(data)}"
    assert headers["content-length"] == str(len(data))
    assert len(body) < len(data)
