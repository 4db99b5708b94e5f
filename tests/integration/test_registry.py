"""Pull and push against a real registry (docker-registry 2.8 on 127.0.0.1), driven by the
docker CLI, docker-py and moor: no auth, htpasswd basic auth and bearer tokens; digests,
multi-arch indexes, corrupt blobs, interrupted downloads and hostile layers."""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemon import DOCKER_CLI, Moord, inspect
from tests.support.registry import (
    FlakyProxy,
    Registry,
    basic_registry,
    flaky_proxy,
    fresh_registry,
    make_image,
    make_layer_tar,
    push_blob,
    push_manifest,
    push_multiarch_index,
    random_layers,
    registry,
    token_registry,
)

__all__ = ["basic_registry", "flaky_proxy", "fresh_registry", "registry", "token_registry"]

pytestmark = pytest.mark.integration


def _repo(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def _docker(d: Moord, *args: str, env: dict[str, str] | None = None, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([DOCKER_CLI, *args], env={**d.env, **(env or {})},
                            input=input if input is not None else "",  # never prompt for a login
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}\n{d.log_tail(30)}")
    return result


def _moor(d: Moord, *args: str, env: dict[str, str] | None = None, check: bool = True,
          input: str | None = None) -> subprocess.CompletedProcess[str]:
    import sys
    result = subprocess.run([sys.executable, "-m", "engine.cli", *args],
                            env={**d.env, "MOORAGE_HOST": d.host, **(env or {})}, input=input,
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"moor {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}\n{d.log_tail(30)}")
    return result


@pytest.fixture
def bare_moord(fresh_moord: Callable[[], Moord]) -> Moord:
    """A daemon with no images at all: whatever it runs, it had to pull."""
    d = fresh_moord()
    d.start()
    return d


def _login_env(tmp_path: Path) -> dict[str, str]:
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    return {"DOCKER_CONFIG": str(config_dir)}


# the round trip -----------------------------------------------------------------------


def test_push_remove_pull_run_busybox(moord: Moord, bare_moord: Moord, registry: Registry) -> None:
    """Push busybox from one daemon, pull it into an empty one, and run it there."""
    name = f"{registry.host}/{_repo('busybox')}:1.0"
    moord.docker("tag", "busybox:latest", name)
    pushed = moord.docker("push", name)
    assert "Pushed" in pushed.stdout or "Layer already exists" in pushed.stdout
    assert "1.0: digest: sha256:" in pushed.stdout
    digest = pushed.stdout.split("digest: ")[1].split()[0]
    moord.docker("rmi", name)

    pulled = bare_moord.docker("pull", name)
    assert f"1.0: Pulling from {name.split('/', 1)[1].split(':')[0]}" in pulled.stdout
    assert "Pull complete" in pulled.stdout
    assert f"Digest: {digest}" in pulled.stdout
    assert f"Status: Downloaded newer image for {name}" in pulled.stdout
    again = bare_moord.docker("pull", name)
    assert f"Status: Image is up to date for {name}" in again.stdout

    out = bare_moord.docker("run", "--rm", name, "echo", "pulled and ran")
    assert out.stdout == "pulled and ran\n"
    info = inspect(bare_moord, name)
    assert f"{name.rsplit(':', 1)[0]}@{digest}" in info["RepoDigests"]  # type: ignore[operator]
    assert info["Id"] == inspect(moord, "busybox:latest")["Id"]


def test_run_pulls_a_missing_image(moord: Moord, bare_moord: Moord, registry: Registry) -> None:
    name = f"{registry.host}/{_repo('autopull')}:v1"
    moord.docker("tag", "busybox:latest", name)
    moord.docker("push", name)
    result = bare_moord.docker("run", "--rm", name, "echo", "hi")
    assert f"Unable to find image '{name}' locally" in result.stderr
    assert result.stdout == "hi\n"


def test_pull_progress_of_a_multi_layer_image(moord: Moord, registry: Registry) -> None:
    layers = random_layers(seed=7, count=3, size=2 << 20)
    image = make_image(registry, _repo("layers"), "v1", layers, manifest_format="docker")
    pulled = moord.docker("pull", image.ref)
    for short in (d.split(":")[1][:12] for d in image.layer_digests):
        assert f"{short}: Pull complete" in pulled.stdout, pulled.stdout
    info = inspect(moord, image.ref)
    assert info["RootFS"]["Layers"] == list(image.diff_ids)  # type: ignore[index]
    assert info["Id"] == image.config_digest
    # a second image sharing the bottom layer: that one is not downloaded again
    second = make_image(registry, _repo("layers"), "v2", [layers[0], make_layer_tar({"x": b"1"})])
    out = moord.docker("pull", second.ref)
    assert f"{image.layer_digests[0].split(':')[1][:12]}: Already exists" in out.stdout
    moord.docker("rmi", image.ref, second.ref)


def test_pull_by_digest(moord: Moord, registry: Registry) -> None:
    image = make_image(registry, _repo("bydigest"), None, [make_layer_tar({"d": b"digest"})])
    moord.docker("pull", image.digest_ref)
    info = inspect(moord, image.digest_ref)
    assert image.digest_ref in info["RepoDigests"]  # type: ignore[operator]
    assert info["RepoTags"] == []
    wrong = image.digest_ref[:-4] + ("0000" if not image.digest_ref.endswith("0000") else "1111")
    bad = moord.docker("pull", wrong, check=False)
    assert bad.returncode != 0
    moord.docker("rmi", image.digest_ref)


def test_multi_arch_index_selects_the_platform(moord: Moord, registry: Registry) -> None:
    index = push_multiarch_index(registry, _repo("multi"), "v1")
    moord.docker("pull", index.ref)
    info = inspect(moord, index.ref)
    assert info["Architecture"] == "amd64"
    assert info["Id"] == index.images["linux/amd64"].config_digest
    assert f"{index.host}/{index.repo}@{index.digest}" in info["RepoDigests"]  # type: ignore[operator]
    arm = f"{index.host}/{index.repo}:arm"
    moord.docker("pull", "--platform", "linux/arm64", index.ref)
    info = inspect(moord, index.ref)
    assert info["Architecture"] == "arm64"
    assert info["Id"] == index.images["linux/arm64"].config_digest
    missing = moord.docker("pull", "--platform", "linux/s390x", index.ref, check=False)
    assert "no matching manifest for linux/s390x" in missing.stderr
    del arm
    moord.docker("rmi", index.ref)


def test_docker_manifest_list_too(moord: Moord, registry: Registry) -> None:
    index = push_multiarch_index(registry, _repo("list"), "v1", manifest_format="docker")
    moord.docker("pull", index.ref)
    assert inspect(moord, index.ref)["Id"] == index.images["linux/amd64"].config_digest
    moord.docker("rmi", index.ref)


def test_unknown_names_are_404(moord: Moord, registry: Registry) -> None:
    result = moord.docker("pull", f"{registry.host}/nothing-here:v1", check=False)
    assert result.returncode != 0
    assert "not found: manifest unknown" in result.stderr
    bad = moord.docker("pull", f"{registry.host}/UPPER:v1", check=False)
    assert "invalid reference format" in bad.stderr
    unreachable = moord.docker("pull", "127.0.0.1:1/nothing:v1", check=False)
    assert unreachable.returncode != 0
    assert "connect" in unreachable.stderr.lower()
    missing = moord.docker("push", f"{registry.host}/never-tagged:v1", check=False)
    assert "No such image" in missing.stderr or "does not exist" in missing.stderr


# integrity ---------------------------------------------------------------------------


def test_a_corrupt_blob_in_the_registry_is_refused(moord: Moord, registry: Registry) -> None:
    image = make_image(registry, _repo("corrupt"), "v1", [make_layer_tar({"f": b"x" * 5000})])
    data = registry.blob_path(image.layer_digests[0])
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    result = moord.docker("pull", image.ref, check=False)
    assert result.returncode != 0
    assert f"filesystem layer verification failed for digest {image.layer_digests[0]}" in (
        result.stdout + result.stderr)
    assert moord.docker("image", "inspect", image.ref, check=False).returncode != 0


def test_a_corrupt_local_blob_is_caught_and_refetched(moord: Moord, registry: Registry) -> None:
    image = make_image(registry, _repo("localrot"), "v1", [make_layer_tar({"g": b"y" * 5000})])
    moord.docker("pull", image.ref)
    blob = moord.data_root / "images" / "blobs" / "sha256" / image.layer_digests[0].split(":")[1]
    raw = bytearray(blob.read_bytes())
    raw[10] ^= 0xFF
    blob.write_bytes(bytes(raw))
    other = f"{registry.host}/{_repo('copy')}:v1"
    moord.docker("tag", image.ref, other)
    push = moord.docker("push", other, check=False)
    assert push.returncode != 0
    assert "corrupt" in (push.stdout + push.stderr)
    assert not blob.exists()  # set aside, never sent
    moord.docker("pull", image.ref)  # brings the tarball back
    assert blob.exists()
    moord.docker("push", other)
    moord.docker("rmi", image.ref, other)


def test_an_interrupted_download_resumes_with_range(moord: Moord, registry: Registry,
                                                    flaky_proxy: FlakyProxy) -> None:
    layers = random_layers(seed=11, count=1, size=3 << 20)
    image = make_image(registry, _repo("resume"), "v1", layers)
    flaky_proxy.arm(cut_after=1 << 20, times=2)  # the config's small GET claims one
    name = f"{flaky_proxy.host}/{image.repo}:v1"
    moord.docker("pull", name)
    blob_gets = [r for r in flaky_proxy.blob_requests
                 if image.layer_digests[0] in r.target]
    assert blob_gets[0].cut
    assert blob_gets[0].range is None
    assert any(r.range and r.range.startswith("bytes=") and r.range != "bytes=0-"
               for r in blob_gets[1:]), blob_gets
    assert inspect(moord, name)["Id"] == image.config_digest
    moord.docker("rmi", name)


def test_a_failed_pull_leaves_its_bytes_for_the_next(moord: Moord, registry: Registry,
                                                     flaky_proxy: FlakyProxy) -> None:
    layers = random_layers(seed=12, count=1, size=3 << 20)
    image = make_image(registry, _repo("resume2"), "v1", layers)
    flaky_proxy.arm(cut_after=512 << 10, times=100)  # every attempt breaks
    name = f"{flaky_proxy.host}/{image.repo}:v1"
    failed = moord.docker("pull", name, check=False, )
    assert failed.returncode != 0
    assert "kept for the next pull" in (failed.stdout + failed.stderr)
    partial = moord.data_root / "images" / "downloads" / (
        image.layer_digests[0].split(":")[1] + ".partial")
    kept = partial.stat().st_size
    assert kept >= 512 << 10
    flaky_proxy.disarm()
    before = len(flaky_proxy.blob_requests)
    moord.docker("pull", name)
    resumed = [r for r in flaky_proxy.blob_requests[before:] if image.layer_digests[0] in r.target]
    assert resumed[0].range == f"bytes={kept}-"
    assert resumed[0].body_bytes == len(layers[0]) - kept
    assert not partial.exists()
    moord.docker("rmi", name)


def test_hostile_layers_cannot_write_outside(moord: Moord, registry: Registry, tmp_path: Path) -> None:
    target = tmp_path / "escaped"
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    info = tarfile.TarInfo(f"../../../../../../..{target}")
    members.append((info, b"owned"))
    link = tarfile.TarInfo("evil")
    link.type = tarfile.SYMTYPE
    link.linkname = str(tmp_path)
    members.append((link, None))
    through = tarfile.TarInfo("evil/escaped-too")
    members.append((through, b"owned"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for member, data in members:
            if data is not None:
                member.size = len(data)
                tf.addfile(member, io.BytesIO(data))
            else:
                tf.addfile(member)
    image = make_image(registry, _repo("hostile"), "v1", [buf.getvalue()])
    result = moord.docker("pull", image.ref, check=False)
    assert not target.exists()
    assert not (tmp_path / "escaped-too").exists()
    if result.returncode == 0:  # refused or confined; either way nothing left the layer
        moord.docker("rmi", image.ref)
    else:
        assert "invalid layer archive" in result.stderr or ".." in result.stderr


# authentication ----------------------------------------------------------------------


def test_basic_auth_login_push_pull(moord: Moord, basic_registry: Registry, tmp_path: Path) -> None:
    env = _login_env(tmp_path)
    name = f"{basic_registry.host}/{_repo('private')}:v1"
    moord.docker("tag", "busybox:latest", name)
    denied = _docker(moord, "push", name, env=env, check=False)
    assert denied.returncode != 0
    wrong = _docker(moord, "login", "-u", basic_registry.username, "--password-stdin",
                    basic_registry.host, env=env, check=False, input="wrong\n")
    assert wrong.returncode != 0
    assert "401" in wrong.stderr
    ok = _docker(moord, "login", "-u", basic_registry.username, "--password-stdin",
                 basic_registry.host, env=env, input=basic_registry.password + "\n")
    assert "Login Succeeded" in ok.stdout
    _docker(moord, "push", name, env=env)
    moord.docker("rmi", name)
    _docker(moord, "pull", name, env=env)
    _docker(moord, "logout", basic_registry.host, env=env)
    moord.docker("rmi", name)
    again = _docker(moord, "pull", name, env=env, check=False)
    assert again.returncode != 0


def test_token_auth_with_docker_py(moord: Moord, token_registry: Registry) -> None:
    import docker

    assert token_registry.token_server is not None
    token_registry.token_server.reset()
    client = docker.DockerClient(base_url=f"unix://{moord.socket_path}", version="1.43")
    creds = {"username": token_registry.username, "password": token_registry.password}
    repo = f"{token_registry.host}/{_repo('tok')}"
    client.images.get("busybox:latest").tag(repo, "v1")
    lines = list(client.images.push(repo, "v1", auth_config=creds, stream=True, decode=True))
    assert not [x for x in lines if "error" in x], lines
    assert any(x.get("aux", {}).get("Digest") for x in lines)
    scopes = token_registry.token_server.scopes_seen
    assert any(s.startswith(f"repository:{repo.split('/', 1)[1]}:") and "push" in s
               for s in scopes), scopes
    client.images.remove(f"{repo}:v1")
    image = client.images.pull(repo, "v1", auth_config=creds)
    assert f"{repo}:v1" in image.tags
    # a second repository on the same registry: the layer is mounted, not uploaded
    other = f"{token_registry.host}/{_repo('tok2')}"
    image.tag(other, "v1")
    pushed = list(client.images.push(other, "v1", auth_config=creds, stream=True, decode=True))
    assert any(str(x.get("status", "")).startswith("Mounted from") for x in pushed), pushed
    with pytest.raises(docker.errors.APIError):
        client.images.pull(repo, "v1", auth_config={"username": "moor", "password": "bad"})
    client.images.remove(f"{repo}:v1")
    client.images.remove(f"{other}:v1")
    client.close()


def test_moor_login_push_pull(moord: Moord, basic_registry: Registry, tmp_path: Path) -> None:
    env = _login_env(tmp_path)
    name = f"{basic_registry.host}/{_repo('moor')}:v1"
    _moor(moord, "tag", "busybox:latest", name)
    login = _moor(moord, "login", "-u", basic_registry.username, "--password-stdin",
                  basic_registry.host, env=env, input=basic_registry.password)
    assert "Login Succeeded" in login.stdout
    saved = json.loads((Path(env["DOCKER_CONFIG"]) / "config.json").read_text())
    assert basic_registry.host in saved["auths"]
    pushed = _moor(moord, "push", name, env=env)
    assert "v1: digest: sha256:" in pushed.stdout
    _moor(moord, "rmi", name)
    pulled = _moor(moord, "pull", name, env=env)
    assert "Status: Downloaded newer image" in pulled.stdout
    _moor(moord, "logout", basic_registry.host, env=env)
    assert basic_registry.host not in json.loads(
        (Path(env["DOCKER_CONFIG"]) / "config.json").read_text())["auths"]
    _moor(moord, "rmi", name)
    assert os.environ.get("DOCKER_CONFIG") != env["DOCKER_CONFIG"]


# formats and mirrors --------------------------------------------------------------------


def test_zstd_and_uncompressed_layers(moord: Moord, registry: Registry) -> None:
    import zstandard

    repo = _repo("zstd")
    plain = make_layer_tar({"plain.txt": b"uncompressed\n"}, gzip=False)
    packed = make_layer_tar({"zstd.txt": b"zstd compressed\n"}, gzip=False)
    compressed = zstandard.ZstdCompressor().compress(packed)
    layers = [(plain, "application/vnd.oci.image.layer.v1.tar"),
              (compressed, "application/vnd.oci.image.layer.v1.tar+zstd")]
    descs = [{"mediaType": kind, "digest": push_blob(registry, repo, data), "size": len(data)}
             for data, kind in layers]
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [
            "sha256:" + hashlib.sha256(plain).hexdigest(),
            "sha256:" + hashlib.sha256(packed).hexdigest()]},
    }).encode()
    config_digest = push_blob(registry, repo, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": descs}).encode()
    push_manifest(registry, repo, "v1", manifest, "application/vnd.oci.image.manifest.v1+json")
    name = f"{registry.host}/{repo}:v1"
    moord.docker("pull", name)
    assert inspect(moord, name)["Id"] == config_digest
    # pushed back as they came: the same blobs, an OCI manifest naming their compression
    other = f"{registry.host}/{_repo('zstd-copy')}:v1"
    moord.docker("tag", name, other)
    moord.docker("push", other)
    with registry.client() as client:
        got = client.get(f"/v2/{other.split('/', 1)[1].split(':')[0]}/manifests/v1",
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert [layer["digest"] for layer in got.json()["layers"]] == [d["digest"] for d in descs]
    assert [layer["mediaType"] for layer in got.json()["layers"]] == [d["mediaType"] for d in descs]
    moord.docker("rmi", name, other)


def test_docker_io_names_go_to_the_mirror(fresh_moord: Callable[[], Moord],
                                          registry: Registry) -> None:
    """With --registry-mirror, `docker pull name` is served by the mirror (never Docker Hub)."""
    repo = _repo("mirrored")
    image = make_image(registry, f"library/{repo}", "v1", [make_layer_tar({"m": b"mirror"})])
    d = fresh_moord()
    d.start("--registry-mirror", f"http://{registry.host}")
    d.docker("pull", f"{repo}:v1")
    info = inspect(d, f"{repo}:v1")
    assert info["Id"] == image.config_digest
    assert f"{repo}@{image.digest}" in info["RepoDigests"]  # type: ignore[operator]
    mirrors = d.docker("info", "--format", "{{json .RegistryConfig.Mirrors}}").stdout
    assert json.loads(mirrors) == [f"http://{registry.host}"]


def test_push_all_tags(moord: Moord, registry: Registry) -> None:
    repo = f"{registry.host}/{_repo('alltags')}"
    for tag in ("a", "b"):
        moord.docker("tag", "busybox:latest", f"{repo}:{tag}")
    out = moord.docker("push", "--all-tags", repo).stdout
    assert "a: digest: sha256:" in out
    assert "b: digest: sha256:" in out
    with registry.client() as client:
        tags = client.get(f"/v2/{repo.split('/', 1)[1]}/tags/list").json()["tags"]
    assert sorted(tags) == ["a", "b"]
    moord.docker("rmi", f"{repo}:a", f"{repo}:b")
