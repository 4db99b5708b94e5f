"""Engine API requests shaped as the Go docker clients send them, for replaying what an
orchestrator (Nomad's docker driver, cri-dockerd) asks of an engine.

Go's encoding/json writes every field of moby's structs, zero values included, and its
URLs keep "@" and ":" unescaped; the Docker SDK for Python drops top-level nulls and
escapes path arguments, so these helpers send bodies and paths as given.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from datetime import datetime
from typing import Any

import docker

from tests.support.registry import Registry


def go_resources(**fields: Any) -> dict[str, Any]:
    """container.Resources as encoding/json writes it: every field, zero values included."""
    body: dict[str, Any] = {
        "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
        "BlkioWeightDevice": None, "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
        "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": 0,
        "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "",
        "CpusetMems": "", "Devices": None, "DeviceCgroupRules": None, "DeviceRequests": None,
        "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None,
        "OomKillDisable": None, "PidsLimit": None, "Ulimits": None, "CpuCount": 0,
        "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
    }
    body.update(fields)
    return body


def go_host_config(**fields: Any) -> dict[str, Any]:
    """container.HostConfig (with its embedded Resources) as Go writes it."""
    body: dict[str, Any] = {
        "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": None},
        "NetworkMode": "", "PortBindings": None,
        "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}, "AutoRemove": False,
        "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0], "CapAdd": None,
        "CapDrop": None, "CgroupnsMode": "", "Dns": None, "DnsOptions": None, "DnsSearch": None,
        "ExtraHosts": None, "GroupAdd": None, "IpcMode": "", "Cgroup": "", "Links": None,
        "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
        "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
        "ShmSize": 0, "Isolation": "", "MaskedPaths": None, "ReadonlyPaths": None,
        **go_resources(),
    }
    body.update(fields)
    return body


def go_create_body(host: dict[str, Any], networking: dict[str, Any] | None = None,
                   **config: Any) -> dict[str, Any]:
    """container.CreateRequest: the Config fields, HostConfig and NetworkingConfig."""
    body: dict[str, Any] = {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
        "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
        "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
    }
    body.update(config)
    body["HostConfig"] = host
    body["NetworkingConfig"] = networking
    return body


def post(api: docker.APIClient, path: str, body: Any = None, **params: Any) -> Any:
    """POST a JSON body exactly as given (the SDK's helper would drop top-level nulls)."""
    return api._post(api._url(path), params=params or None,
                     data=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"})


def ok(response: Any) -> Any:
    assert response.status_code < 400, f"{response.status_code}: {response.text}"
    return response


def create(api: docker.APIClient, body: dict[str, Any], name: str = "") -> str:
    params = {"name": name} if name else {}
    cid = ok(post(api, "/containers/create", body, **params)).json()["Id"]
    assert isinstance(cid, str)
    return cid


def exec_in(api: docker.APIClient, cid: str, *cmd: str) -> str:
    made = api.exec_create(cid, list(cmd))
    return str(api.exec_start(made["Id"]).decode(errors="replace"))


def read_until_eof(sock: socket.socket, timeout: float = 30) -> bytes:
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def demux(stream: bytes) -> tuple[bytes, bytes]:
    """stdout and stderr from a multiplexed stream, as stdcopy.StdCopy splits it (frame
    boundaries carry no meaning)."""
    out, err = bytearray(), bytearray()
    while stream:
        kind, size = stream[0], int.from_bytes(stream[4:8], "big")
        (err if kind == 2 else out).extend(stream[8:8 + size])
        stream = stream[8 + size:]
    return bytes(out), bytes(err)


def wait_exec_done(api: docker.APIClient, exec_id: str) -> dict[str, Any]:
    """Both poll `GET /exec/{id}/json` until Running is false (Nomad every 100 ms)."""
    deadline = time.monotonic() + 30
    while True:
        state: dict[str, Any] = api.exec_inspect(exec_id)
        if not state["Running"] or time.monotonic() > deadline:
            return state
        time.sleep(0.1)


def parse_go_time(value: str) -> datetime:
    """What time.Parse(time.RFC3339, …) accepts: moord's nanoseconds trimmed to micro."""
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00")))


def registry_auth(reg: Registry) -> str:
    """X-Registry-Auth: base64url of the AuthConfig JSON, as both encode it."""
    config = {"username": reg.username, "password": reg.password, "serveraddress": reg.host}
    return base64.urlsafe_b64encode(json.dumps(config).encode() + b"\n").decode()


def pull(api: docker.APIClient, image: str, tag: str, auth: str) -> list[dict[str, Any]]:
    response = api._post(api._url("/images/create"), params={"fromImage": image, "tag": tag},
                         headers={"X-Registry-Auth": auth}, stream=True)
    ok(response)
    return [json.loads(line) for line in response.iter_lines() if line.strip()]
