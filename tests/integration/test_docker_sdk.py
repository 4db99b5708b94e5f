"""The Docker SDK for Python against moord, and raw API edge cases."""

from __future__ import annotations

import socket

import docker
import docker.errors
import pytest

from tests.support.daemon import Moord


def test_sdk_run_and_output(docker_client: docker.DockerClient) -> None:
    out = docker_client.containers.run("busybox", ["echo", "from sdk"], remove=True)
    assert out == b"from sdk\n"


def test_sdk_lifecycle(docker_client: docker.DockerClient) -> None:
    c = docker_client.containers.run("busybox", ["sh", "-c", "echo up; exec sleep 60"],
                                     detach=True, name="sdk1", labels={"k": "v"})
    try:
        c.reload()
        assert c.status == "running"
        assert c.labels == {"k": "v"}
        assert [x.name for x in docker_client.containers.list(filters={"label": "k=v"})] == ["sdk1"]
        c.stop(timeout=1)
        c.reload()
        assert c.status == "exited"
        assert c.attrs["State"]["ExitCode"] == 137
        assert b"up" in c.logs()
        c.start()
        c.reload()
        assert c.status == "running"
        c.kill()
        assert c.wait()["StatusCode"] == 137
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get("sdk1")


def test_sdk_errors(docker_client: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.containers.create("no-such-image:latest", "true")
    c = docker_client.containers.create("busybox", "true", name="sdkdup")
    try:
        with pytest.raises(docker.errors.APIError) as info:
            docker_client.containers.create("busybox", "true", name="sdkdup")
        assert info.value.status_code == 409
    finally:
        c.remove()


def test_sdk_images(docker_client: docker.DockerClient) -> None:
    image = docker_client.images.get("busybox")
    assert "busybox:latest" in image.tags
    assert image.attrs["Config"]["Cmd"] == ["sh"]


def _raw(moord: Moord, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(moord.socket_path))
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_malformed_json_is_400(moord: Moord) -> None:
    body = b'{"Image": "busybox", "Cmd": ['
    response = _raw(moord, b"POST /v1.50/containers/create HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert response.startswith(b"HTTP/1.1 400")
    assert b"Content-Type: application/json" in response or b"content-type: application/json" in response
    assert b'"message"' in response


def test_wrong_type_is_400(moord: Moord) -> None:
    body = b'{"Image": "busybox", "Cmd": "true", "Tty": "yes"}'
    response = _raw(moord, b"POST /containers/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert response.startswith(b"HTTP/1.1 400")
    assert b"Tty" in response


def test_unknown_path_is_404_and_ping_headers(moord: Moord) -> None:
    response = _raw(moord, b"GET /v1.50/nothing/here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 404")
    ping = _raw(moord, b"HEAD /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").lower()
    assert ping.startswith(b"http/1.1 200")
    assert b"api-version: 1.50" in ping
    assert b"ostype: linux" in ping


def test_too_new_api_version_is_400(moord: Moord) -> None:
    response = _raw(moord, b"GET /v9.99/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400")
    assert b"is too new" in response
