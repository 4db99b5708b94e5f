"""The registry client's pure parts: manifests, platforms, challenges, credentials,
endpoints, progress messages, and the CLI's config.json handling."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from engine.api.wire import progress as wire
from engine.cli.credentials import forget_login, registry_auth_header, store_login
from engine.errors import InvalidParameter, NotFound
from engine.images.importer import Platform
from engine.registry import media
from engine.registry.auth import (
    INDEX_SERVER,
    credentials_from_config,
    decode_registry_auth,
    parse_challenges,
    server_domain,
)
from engine.registry.endpoints import DOCKER_HUB_URL, Endpoint, RegistryHosts
from engine.registry.progress import Progress
from engine.registry.sources import BlobSources

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def _index(*platforms: tuple[str, str, str]) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": media.OCI_INDEX,
        "manifests": [{"mediaType": media.OCI_MANIFEST, "digest": f"sha256:{i:064x}", "size": 1,
                       "platform": {"os": o, "architecture": a, "variant": v}}
                      for i, (o, a, v) in enumerate(platforms)]}).encode()


def test_manifest_shapes() -> None:
    doc = {"schemaVersion": 2, "mediaType": media.DOCKER_MANIFEST,
           "config": {"mediaType": media.DOCKER_CONFIG, "digest": D1, "size": 10},
           "layers": [{"mediaType": media.DOCKER_LAYER_GZIP, "digest": D2, "size": 20}]}
    parsed = media.parse_manifest(json.dumps(doc).encode(), "")
    assert isinstance(parsed, media.Manifest)
    assert parsed.config.digest == D1
    assert [layer.short_id for layer in parsed.layers] == ["2" * 12]
    index = media.parse_manifest(_index(("linux", "amd64", "")), media.OCI_INDEX)
    assert isinstance(index, media.Index)
    # no mediaType inside: the Content-Type decides, then the shape
    doc.pop("mediaType")
    assert isinstance(media.parse_manifest(json.dumps(doc).encode(), media.OCI_MANIFEST),
                      media.Manifest)


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "invalid manifest"),
    (b"[]", "not a JSON object"),
    (json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), "schema 1"),
    (json.dumps({"schemaVersion": 2, "layers": [], "config": {"digest": "md5:x", "size": 1}})
     .encode(), "unsupported digest"),
    (json.dumps({"schemaVersion": 2, "config": {"digest": D1, "size": 1},
                 "layers": [{"mediaType": "text/html", "digest": D2, "size": 1}]}).encode(),
     "unsupported layer media type"),
    (json.dumps({"schemaVersion": 2, "config": {"digest": D1, "size": -1}, "layers": []})
     .encode(), "invalid size"),
])
def test_bad_manifests_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        media.parse_manifest(body, media.OCI_MANIFEST)


def test_platform_selection() -> None:
    index = media.parse_manifest(_index(("linux", "arm", "v6"), ("linux", "arm", "v7"),
                                        ("linux", "arm64", ""), ("linux", "amd64", ""),
                                        ("windows", "amd64", "")), "")
    assert isinstance(index, media.Index)
    pick = media.select_platform
    assert pick(index, Platform("linux", "amd64")).digest == f"sha256:{3:064x}"
    assert pick(index, Platform("linux", "arm", "v7")).digest == f"sha256:{1:064x}"
    assert pick(index, Platform("linux", "arm64", "v8")).digest == f"sha256:{2:064x}"
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        pick(index, Platform("linux", "s390x"))
    with pytest.raises(NotFound, match="linux/arm/v5"):
        pick(index, Platform("linux", "arm", "v5"))


def test_manifest_bytes_round_trip() -> None:
    config = media.Descriptor(media.OCI_CONFIG, D1, 3)
    layers = [media.Descriptor(media.OCI_LAYER_ZSTD, D2, 4)]
    parsed = media.parse_manifest(media.manifest_bytes(config, layers, media.OCI_MANIFEST), "")
    assert isinstance(parsed, media.Manifest)
    assert parsed.layers[0].media_type == media.OCI_LAYER_ZSTD


def test_challenges() -> None:
    [bearer] = parse_challenges(
        'Bearer realm="http://127.0.0.1:9/token",service="reg",scope="repository:a/b:pull,push"')
    assert bearer.scheme == "bearer"
    assert bearer.params == {"realm": "http://127.0.0.1:9/token", "service": "reg",
                             "scope": "repository:a/b:pull,push"}
    [basic] = parse_challenges('Basic realm="Registry Realm"')
    assert basic.scheme == "basic"
    assert basic.params["realm"] == "Registry Realm"
    assert parse_challenges("") == []


def test_registry_auth_header() -> None:
    assert decode_registry_auth("e30=") is None
    assert decode_registry_auth(None) is None
    raw = base64.urlsafe_b64encode(json.dumps(
        {"username": "u", "password": "p?>", "serveraddress": "x"}).encode()).decode().rstrip("=")
    creds = decode_registry_auth(raw)
    assert creds is not None
    assert (creds.username, creds.password) == ("u", "p?>")
    assert "p?>" not in repr(creds)
    with pytest.raises(InvalidParameter):
        decode_registry_auth("!!!not-base64!!!")


def test_config_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": "desktop", "auths": {"other:1": {}}}))
    store_login("127.0.0.1:5000", "alice", "s3cret", path=path)
    store_login("", "bob", "hub", path=path)
    doc = json.loads(path.read_text())
    assert doc["credsStore"] == "desktop"  # what we don't know is kept
    assert set(doc["auths"]) == {"other:1", "127.0.0.1:5000", INDEX_SERVER}
    assert path.stat().st_mode & 0o777 == 0o600
    creds = credentials_from_config("127.0.0.1:5000", path)
    assert creds is not None
    assert (creds.username, creds.password) == ("alice", "s3cret")
    hub = credentials_from_config("docker.io", path)
    assert hub is not None
    assert hub.username == "bob"
    header = json.loads(base64.urlsafe_b64decode(registry_auth_header("127.0.0.1:5000", path)))
    assert header["username"] == "alice"
    assert json.loads(base64.urlsafe_b64decode(registry_auth_header("nowhere:1", path))) == {}
    assert forget_login("http://127.0.0.1:5000/v2/", path=path)
    assert credentials_from_config("127.0.0.1:5000", path) is None
    assert not forget_login("127.0.0.1:5000", path=path)


def test_server_domains() -> None:
    assert server_domain("https://index.docker.io/v1/") == "docker.io"
    assert server_domain("") == "docker.io"
    assert server_domain("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    assert server_domain("myreg.example:443") == "myreg.example:443"


def test_endpoints() -> None:
    hosts = RegistryHosts(mirrors=["192.0.2.10:5000", "http://127.0.0.1:6000/"],
                          insecure=["10.0.0.0/8", "plain.example"])
    assert hosts.endpoints("docker.io") == [
        Endpoint("https://192.0.2.10:5000", mirror=True),
        Endpoint("http://127.0.0.1:6000", mirror=True, verify_tls=False),
        Endpoint(DOCKER_HUB_URL),
    ]
    assert hosts.endpoints("127.0.0.1:5000") == [
        Endpoint("https://127.0.0.1:5000", verify_tls=False), Endpoint("http://127.0.0.1:5000")]
    assert hosts.is_insecure("10.1.2.3:5000")
    assert hosts.is_insecure("plain.example:443")
    assert hosts.is_insecure("[::1]:5000")
    assert not hosts.is_insecure("192.0.2.1:5000")
    assert hosts.endpoints("192.0.2.1") == [Endpoint("https://192.0.2.1")]


def test_progress_messages() -> None:
    assert wire.message(Progress("Pulling from library/busybox", id="latest")) == {
        "status": "Pulling from library/busybox", "id": "latest"}
    assert wire.message(Progress("Waiting", "abc", layer=True)) == {
        "status": "Waiting", "progressDetail": {}, "id": "abc"}
    down = wire.message(Progress("Downloading", "abc", 1_048_576, 3_145_728, layer=True))
    assert down["progressDetail"] == {"current": 1_048_576, "total": 3_145_728}
    assert down["progress"].startswith("[================>")
    assert down["progress"].endswith(" 1.049MB/3.146MB")
    aux = wire.message(Progress("", aux={"Tag": "v1", "Digest": D1, "Size": 9}))
    assert aux == {"progressDetail": {}, "aux": {"Tag": "v1", "Digest": D1, "Size": 9}}
    assert json.loads(wire.encode_error("boom")) == {"errorDetail": {"message": "boom"},
                                                     "error": "boom"}
    assert wire.human_size(999) == "999B"
    assert wire.human_size(1_000_000_000) == "1GB"


def test_blob_sources(tmp_path: Path) -> None:
    sources = BlobSources(tmp_path / "sources.json")
    sources.add(D1, "127.0.0.1:5000/a")
    sources.add(D1, "127.0.0.1:5000/b")
    sources.add(D1, "other:1/c")
    assert sources.candidates(D1, "127.0.0.1:5000", exclude="127.0.0.1:5000/b") == ["a"]
    assert sources.candidates(D3, "127.0.0.1:5000", exclude="") == []


def test_terminal_progress_redraws_a_layer_in_place() -> None:
    import io

    from engine.cli.progress import TerminalProgress, render_line

    screen = io.StringIO()
    tty = TerminalProgress(screen)
    tty.show({"status": "Pulling from library/busybox", "id": "latest"})
    tty.show({"status": "Pulling fs layer", "id": "aaa"})
    tty.show({"status": "Pulling fs layer", "id": "bbb"})
    tty.show({"status": "Downloading", "id": "aaa",
              "progressDetail": {"current": 500, "total": 1000}})
    text = screen.getvalue()
    # aaa's line is two up from the cursor: up, rewrite, back down
    assert text.endswith("\x1b[2A\r\x1b[2Kaaa: Downloading [=========================>"
                         "                        ]     500B/1kB\x1b[2B\r")
    assert tty.lines == ["latest", "aaa", "bbb"]
    assert render_line({"status": "Digest: sha256:x"}) == "Digest: sha256:x"
