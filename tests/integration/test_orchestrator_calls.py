"""The Docker Engine API calls two orchestrators make, replayed against moord.

Nomad's docker driver (drivers/docker, moby client v0.5.0, API version negotiated from
`HEAD /_ping`, at least 1.40) and cri-dockerd (docker/docker client v27, which needs an
engine that says API 1.42 or later) drive a node's engine over the API. No Nomad or kubelet
binary runs here, so these tests send what their Go code sends: the same endpoints, query
parameters and headers, and create bodies shaped as Go's encoding/json writes moby's structs
(every field present, zero values included). Only what works today is here; what doesn't,
and what it would take, is in docs/orchestrators.md (its tables name each call).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.daemon import Moord
from tests.support.go_client import (
    create,
    demux,
    exec_in,
    go_create_body,
    go_host_config,
    go_resources,
    ok,
    parse_go_time,
    post,
    pull,
    read_until_eof,
    registry_auth,
    wait_exec_done,
)
from tests.support.registry import Registry, basic_registry, make_image, make_layer_tar

__all__ = ["basic_registry"]

pytestmark = pytest.mark.integration

NOMAD_API = "1.50"  # moby client v0.5.0 negotiates down to what the engine says (moord: 1.50)
CRI_API = "1.46"  # docker/docker v27's client maximum; cri-dockerd wants >= 1.42
ALLOC_LABEL = "com.hashicorp.nomad.alloc_id"
# cri-dockerd's pattern for "the name is taken" (core/helpers.go), to remove the holder
CRI_CONFLICT = re.compile(r'Conflict. (?:.)+ is already in use by container \"?([0-9a-z]+)\"?')
CRI_LOG_LINE = re.compile(r"^\S+ (stdout|stderr) [PF] ")  # what kubelet reads from LogPath


# --- fixtures ----------------------------------------------------------------------------

@pytest.fixture
def nomad(moord: Moord) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=moord.host, version=NOMAD_API, timeout=120)
    yield client
    client.close()


@pytest.fixture
def cri(moord: Moord) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=moord.host, version=CRI_API, timeout=120)
    yield client
    client.close()


def container_cgroup_dir(moord: Moord, cid: str) -> Path:
    """Where the container's cgroup is: Nomad's cpuset fixer computes
    /sys/fs/cgroup/cpuset/docker/<id> (v1) or /sys/fs/cgroup/docker/<id> (v2, cgroupfs)."""
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return Path("/sys/fs/cgroup") / moord.cgroup_parent / cid
    return Path("/sys/fs/cgroup/cpuset") / moord.cgroup_parent / cid



# --- Nomad's docker driver ---------------------------------------------------------------

def test_nomad_fingerprint(moord: Moord, nomad: docker.APIClient) -> None:
    """Negotiation (HEAD /_ping), then /version, /networks and /info for node attributes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(moord.socket_path))
        s.sendall(b"HEAD /_ping HTTP/1.1\r\nHost: api.moby.localhost\r\nConnection: close\r\n\r\n")
        head = read_until_eof(s).decode()
    assert head.startswith("HTTP/1.1 200")
    api_version = re.search(r"(?im)^api-version: *([0-9.]+)", head)
    assert api_version is not None
    assert tuple(map(int, api_version.group(1).split("."))) >= (1, 40)
    version = nomad.version()
    assert version["Version"]
    assert version["ApiVersion"]
    assert version["MinAPIVersion"]
    assert version["Os"] == "linux"
    bridge = [n for n in nomad.networks() if n["Name"] == "bridge"]
    assert bridge
    assert bridge[0]["IPAM"]["Config"][0]["Gateway"]
    info = nomad.info()
    assert info["OSType"] == "linux"
    assert info["CgroupDriver"] in ("cgroupfs", "systemd")
    assert isinstance(info["Runtimes"], dict)
    assert info["Runtimes"]


def test_nomad_pause_container(nomad: docker.APIClient) -> None:
    """CreateNetwork: the group's pause container; its name taken again: 409, then the
    driver's recovery (list all, inspect by name, remove force, create again)."""
    alloc = str(uuid.uuid4())
    name = f"nomad_init_{alloc}"
    body = go_create_body(
        go_host_config(NetworkMode="none",
                       RestartPolicy={"Name": "unless-stopped", "MaximumRetryCount": 0}),
        Image="busybox", Hostname="grouphost", Labels={ALLOC_LABEL: alloc},
        Cmd=["sleep", "600"])
    pause = create(nomad, body, name)
    try:
        found = [c for c in nomad.containers(all=True) if f"/{name}" in c["Names"]]
        assert [c["Id"] for c in found] == [pause]
        assert ok(post(nomad, f"/containers/{pause}/start")).status_code == 204
        state = nomad.inspect_container(pause)
        assert state["State"]["Running"]
        assert state["State"]["Pid"] > 0
        assert state["Config"]["Hostname"] == "grouphost"
        running = nomad.containers(filters={"label": ALLOC_LABEL})
        assert any(n.startswith("/nomad_init_") for c in running for n in c["Names"])
        conflict = post(nomad, "/containers/create", body, name=name)
        assert conflict.status_code == 409
        assert ok(nomad._delete(nomad._url("/containers/{0}", pause),
                                params={"force": 1})).status_code == 204
        pause = create(nomad, body, name)
        ok(post(nomad, f"/containers/{pause}/start"))
        # DestroyNetwork: "just kill it fast", then remove
        assert ok(post(nomad, f"/containers/{pause}/stop", t=1)).status_code == 204
    finally:
        nomad.remove_container(pause, force=True)


def _nomad_task_body(alloc: str, task_dir: Path) -> dict[str, Any]:
    for sub in ("alloc/logs", "local", "secrets"):
        (task_dir / sub).mkdir(parents=True, exist_ok=True)
    (task_dir / "hosts").write_text("127.0.0.1 localhost\n10.0.0.5 grouphost\n")
    memory = 64 << 20
    host = go_host_config(
        Binds=[f"{task_dir}/alloc:/alloc", f"{task_dir}/local:/local",
               f"{task_dir}/secrets:/secrets", f"{task_dir}/alloc/logs:/alloc/logs:ro"],
        LogConfig={"Type": "json-file", "Config": {"max-file": "2", "max-size": "2m"}},
        NetworkMode="default", CapDrop=["CAP_NET_RAW"], Memory=memory, MemorySwap=memory,
        MemorySwappiness=0, CpuShares=100, PidsLimit=-1,
        PortBindings={"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
        Mounts=[
            {"Type": "bind", "Source": str(task_dir / "hosts"), "Target": "/etc/hosts",
             "ReadOnly": True, "BindOptions": {"Propagation": "rprivate"}},
            {"Type": "tmpfs", "Target": "/scratch",
             "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}},
            {"Type": "volume", "Source": f"nomad-{alloc[:8]}", "Target": "/data",
             "VolumeOptions": {"NoCopy": False, "Labels": {"alloc": alloc[:8]},
                               "DriverConfig": {"Name": "", "Options": None}}},
        ])
    script = ("trap 'echo got-term; exit 42' TERM; echo hello-out; echo hello-err >&2; "
              "cat /etc/hosts; while true; do sleep 0.2; done")
    return go_create_body(
        host, Image="busybox", Cmd=["sh", "-c", script],
        Env=["NOMAD_ALLOC_DIR=/alloc", "NOMAD_TASK_NAME=web"],
        Labels={ALLOC_LABEL: alloc, "com.hashicorp.nomad.task_name": "web"},
        ExposedPorts={"8080/tcp": {}}, Healthcheck={"Test": ["NONE"]})


def test_nomad_task_lifecycle(moord: Moord, nomad: docker.APIClient, tmp_path: Path) -> None:
    """StartTask .. DestroyTask for a task on the default network (no group network):
    create, find by name, start, inspect, wait(not-running) + kill, stop, remove."""
    alloc = str(uuid.uuid4())
    name = f"web-{alloc}"
    cid = create(nomad, _nomad_task_body(alloc, tmp_path), name)
    try:
        by_name = [c["Id"] for c in nomad.containers(all=True) if f"/{name}" in c["Names"]]
        assert by_name == [cid]
        assert ok(post(nomad, f"/containers/{cid}/start")).status_code == 204
        assert post(nomad, f"/containers/{cid}/start").status_code < 400  # 304: treated as ok
        state = nomad.inspect_container(cid)
        assert state["State"]["Running"]
        parse_go_time(state["State"]["StartedAt"])
        assert state["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]  # detectIP
        assert state["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostIp"] == "127.0.0.1"
        assert state["HostConfig"]["Cgroup"] == ""
        # with HostConfig.Cgroup empty Nomad computes the cgroup as <root>/docker/<id>:
        # moord's is <root>/<cgroup-parent>/<id>, so `--cgroup-parent docker` matches
        assert container_cgroup_dir(moord, cid).is_dir()
        mounts = {m["Destination"]: m for m in state["Mounts"]}
        assert {"/alloc", "/local", "/secrets", "/alloc/logs", "/data"} <= set(mounts)
        assert mounts["/alloc/logs"]["RW"] is False
        # the reconciler's list: Created, Names, Labels
        listed = next(c for c in nomad.containers() if c["Id"] == cid)
        assert listed["Labels"][ALLOC_LABEL] == alloc
        assert listed["Created"] > 0
        deadline = time.monotonic() + 20
        while b"grouphost" not in nomad.logs(cid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert b"10.0.0.5 grouphost" in nomad.logs(cid)  # its /etc/hosts mount won
        assert exec_in(nomad, cid, "sh", "-c", "grep -c ' /scratch tmpfs' /proc/mounts") == "1\n"
        waited: dict[str, Any] = {}

        def wait() -> None:  # h.run(): the long-running wait on the no-timeout client
            response = nomad._post(nomad._url("/containers/{0}/wait", cid),
                                   params={"condition": "not-running"}, timeout=120)
            waited["status"], waited["body"] = response.status_code, response.json()

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.3)
        assert ok(post(nomad, f"/containers/{cid}/kill", signal="SIGTERM")).status_code == 204
        waiter.join(60)
        assert waited == {"status": 200, "body": {"StatusCode": 42, "Error": None}}
        after = nomad.inspect_container(cid)["State"]
        assert not after["Running"]
        assert not after["OOMKilled"]
        assert after["ExitCode"] == 42
        parse_go_time(after["FinishedAt"])
        assert post(nomad, f"/containers/{cid}/stop", t=0).status_code == 304  # NotModified
        assert b"got-term" in nomad.logs(cid)
    finally:
        nomad.remove_container(cid, force=True, v=True)
    assert nomad._get(nomad._url("/containers/{0}/json", cid)).status_code == 404


def test_nomad_stop_with_timeout(nomad: docker.APIClient) -> None:
    """Kill() without a kill_signal: ContainerStop?t=<kill_timeout>, SIGKILL after it."""
    cid = create(nomad, go_create_body(go_host_config(NetworkMode="none"), Image="busybox",
                                       Cmd=["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]))
    try:
        ok(post(nomad, f"/containers/{cid}/start"))
        assert ok(post(nomad, f"/containers/{cid}/stop", t=1)).status_code == 204
        assert nomad.inspect_container(cid)["State"]["ExitCode"] == 137
    finally:
        nomad.remove_container(cid, force=True)


@pytest.fixture
def running_task(nomad: docker.APIClient) -> Iterator[str]:
    cid = create(nomad, go_create_body(
        go_host_config(NetworkMode="none"), Image="busybox",
        Cmd=["sh", "-c", "echo started; while true; do sleep 0.2; done"]))
    ok(post(nomad, f"/containers/{cid}/start"))
    yield cid
    nomad.remove_container(cid, force=True)


def test_nomad_exec(nomad: docker.APIClient, running_task: str) -> None:
    """Exec (script checks): output demultiplexed, exit code from exec inspect."""
    made = ok(post(nomad, f"/containers/{running_task}/exec", {
        "User": "", "Privileged": False, "Tty": False, "ConsoleSize": None,
        "AttachStdin": False, "AttachStderr": True, "AttachStdout": True, "DetachKeys": "",
        "Env": None, "WorkingDir": "", "Cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"]})).json()
    assert nomad.exec_start(made["Id"], demux=True) == (b"out\n", b"err\n")
    assert nomad.exec_inspect(made["Id"])["ExitCode"] == 3


def test_nomad_exec_streaming_tty(nomad: docker.APIClient, running_task: str) -> None:
    """`nomad alloc exec -t`: resizes may come before the attach (errors ignored), then
    the hijacked stream; the exit code by polling exec inspect."""
    made = ok(post(nomad, f"/containers/{running_task}/exec", {
        "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": True,
        "Cmd": ["sh"], "ConsoleSize": None})).json()
    early = nomad._post(nomad._url("/exec/{0}/resize", made["Id"]), params={"h": 40, "w": 100})
    assert early.status_code < 500
    sock = nomad.exec_start(made["Id"], tty=True, socket=True)._sock
    try:
        deadline = time.monotonic() + 10
        while nomad.exec_inspect(made["Id"])["Pid"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        ok(nomad._post(nomad._url("/exec/{0}/resize", made["Id"]), params={"h": 33, "w": 77}))
        sock.sendall(b"stty size; exit 7\n")
        output = read_until_eof(sock)
    finally:
        sock.close()
    assert b"33 77" in output
    done = wait_exec_done(nomad, made["Id"])
    assert not done["Running"]
    assert done["ExitCode"] == 7


def test_nomad_exec_stdin_half_close(nomad: docker.APIClient, running_task: str) -> None:
    """Stdin copied in, then CloseWrite on the hijacked connection: the output still comes."""
    made = ok(post(nomad, f"/containers/{running_task}/exec", {
        "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": False,
        "Cmd": ["sh", "-c", "cat; echo done"]})).json()
    sock = nomad.exec_start(made["Id"], socket=True)._sock
    try:
        sock.sendall(b"piped-in\n")
        sock.shutdown(socket.SHUT_WR)
        output = read_until_eof(sock)
    finally:
        sock.close()
    assert demux(output) == (b"piped-in\ndone\n", b"")
    assert wait_exec_done(nomad, made["Id"])["ExitCode"] == 0


def test_nomad_stats(nomad: docker.APIClient, running_task: str) -> None:
    """TaskStats: `stream=false` without one-shot, so the previous sample is filled in;
    DockerStatsToTaskResourceUsage reads these fields."""
    response = ok(nomad._get(nomad._url("/containers/{0}/stats", running_task),
                             params={"stream": "false"}))
    stats = response.json()
    assert stats["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert stats["precpu_stats"]["system_cpu_usage"] > 0
    cpu = stats["cpu_stats"]
    assert cpu["cpu_usage"]["total_usage"] >= stats["precpu_stats"]["cpu_usage"]["total_usage"]
    assert {"usage_in_kernelmode", "usage_in_usermode"} <= set(cpu["cpu_usage"])
    assert {"periods", "throttled_periods", "throttled_time"} <= set(cpu["throttling_data"])
    memory = stats["memory_stats"]
    assert memory["usage"] > 0
    assert {"cache", "rss"} <= set(memory["stats"]) or {"file", "anon"} <= set(memory["stats"])


def test_nomad_log_follow(nomad: docker.APIClient) -> None:
    """docklog: follow from `since` (the Go client sends seconds.nanoseconds), multiplexed
    without a TTY, raw with one; the stream ends when the container stops."""
    started = int(time.time()) - 5
    for tty, expected in ((False, (b"one\n", b"two\n")), (True, b"one\r\ntwo\r\n")):
        cid = create(nomad, go_create_body(
            go_host_config(NetworkMode="none"), Image="busybox", Tty=tty,
            Cmd=["sh", "-c", "echo one; sleep 1; echo two >&2"]))
        try:
            ok(post(nomad, f"/containers/{cid}/start"))
            response = ok(nomad._get(nomad._url("/containers/{0}/logs", cid), stream=True, params={
                "since": f"{started}.000000000", "follow": 1, "stdout": 1, "stderr": 1}))
            body = response.raw.read()
            assert (body if tty else demux(body)) == expected
            assert not nomad.inspect_container(cid)["State"]["Running"]
        finally:
            nomad.remove_container(cid, force=True)


def test_nomad_create_options(nomad: docker.APIClient, tmp_path: Path) -> None:
    """Task config options that reach HostConfig, each checked from inside."""
    seccomp = json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}, separators=(",", ":"))
    (tmp_path / "shared").mkdir()
    host = go_host_config(
        NetworkMode="default",
        SecurityOpt=[f"seccomp={seccomp}", "no-new-privileges"],  # parseSecurityOpts inlines
        Sysctls={"net.ipv4.ip_forward": "1"},
        Ulimits=[{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        ExtraHosts=["db:10.1.2.3"], Dns=["10.0.0.53"], DnsSearch=["svc.local"],
        DnsOptions=["ndots:2"], GroupAdd=["50"], Init=True, ReadonlyRootfs=True,
        ShmSize=128 << 20, OomScoreAdj=500, Runtime="runc", CapAdd=["CAP_SYS_ADMIN"],
        CapDrop=["CAP_NET_RAW"], CpuPeriod=100000, CpuQuota=50000, CpusetCpus="0",
        CpuShares=512, MemoryReservation=32 << 20, Memory=64 << 20, MemorySwap=64 << 20,
        PidsLimit=100,
        Mounts=[{"Type": "bind", "Source": str(tmp_path / "shared"), "Target": "/shared",
                 "BindOptions": {"Propagation": "rslave"}}])
    cid = create(nomad, go_create_body(host, Image="busybox", User="1000", WorkingDir="/tmp",
                                       Entrypoint=["sh", "-c"], Cmd=["sleep 600"]))
    try:
        ok(post(nomad, f"/containers/{cid}/start"))
        script = ("mkdir /tmp/x 2>/dev/null && echo made || echo denied; "
                  "grep NoNewPrivs /proc/self/status; cat /proc/sys/net/ipv4/ip_forward; "
                  "ulimit -n; ulimit -Hn; grep db /etc/hosts; cat /etc/resolv.conf; id; "
                  "cat /proc/1/oom_score_adj; df -k /dev/shm | tail -1; pwd; "
                  "touch /rootfs-file 2>&1 | grep -c Read-only")
        out = exec_in(nomad, cid, "sh", "-c", script)
        state = nomad.inspect_container(cid)
        hc = state["HostConfig"]
        # moord's DNS on the gateway answers and forwards to dns_servers (docs/networks.md)
        gateway = state["NetworkSettings"]["Networks"]["bridge"]["Gateway"]
        assert hc["Dns"] == ["10.0.0.53"]
        for expected in ("denied", "NoNewPrivs:\t1", "\n1\n1024\n2048\n", "10.1.2.3\tdb",
                         f"nameserver {gateway}", "search svc.local", "options ndots:2",
                         "uid=1000", ",50", "\n500\n", "131072", "/tmp\n1"):
            assert expected in out, (expected, out)
        assert exec_in(nomad, cid, "cat", "/proc/1/cmdline").startswith("/sbin/docker-init")
        assert (hc["Runtime"], hc["CpuQuota"], hc["CpusetCpus"], hc["PidsLimit"]) == (
            "runc", 50000, "0", 100)
        assert [m.get("Propagation") for m in state["Mounts"]] == ["rslave"]
    finally:
        nomad.remove_container(cid, force=True)


def test_nomad_network_aliases_static_ip_mac(nomad: docker.APIClient) -> None:
    """network_mode = a user network, with network_aliases, ipv4_address and mac_address:
    NetworkingConfig keyed by the network mode's name."""
    net = f"orch-{uuid.uuid4().hex[:6]}"
    nomad.create_network(net, ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.231.7.0/24")]))
    try:
        cid = create(nomad, go_create_body(
            go_host_config(NetworkMode=net), Image="busybox", Cmd=["sleep", "600"],
            networking={"EndpointsConfig": {net: {
                "Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.231.7.9"},
                "MacAddress": "02:42:0a:e7:07:09"}}}))
        try:
            ok(post(nomad, f"/containers/{cid}/start"))
            ep = nomad.inspect_container(cid)["NetworkSettings"]["Networks"][net]
            assert ep["IPAddress"] == "10.231.7.9"
            assert ep["MacAddress"] == "02:42:0a:e7:07:09"
            assert "web" in ep["Aliases"]
        finally:
            nomad.remove_container(cid, force=True)
    finally:
        nomad.remove_network(net)


def test_nomad_images(moord: Moord, nomad: docker.APIClient, basic_registry: Registry) -> None:
    """createImage: inspect (ID, Config.User); pull with X-Registry-Auth; the coordinator's
    delayed remove with force (404 and 409 are expected answers); `load` with quiet=1."""
    creds = (basic_registry.username, basic_registry.password)
    repo = f"orch-nomad-{uuid.uuid4().hex[:6]}"
    pushed = make_image(basic_registry, repo, "v1", [make_layer_tar({"hello": b"nomad"})],
                        config={"User": "1000", "Cmd": ["/hello"]}, auth=creds)
    lines = pull(nomad, f"{basic_registry.host}/{repo}", "v1", registry_auth(basic_registry))
    assert not [x for x in lines if "error" in x or "errorDetail" in x], lines
    image = nomad.inspect_image(pushed.ref)
    assert image["Id"].startswith("sha256:")
    assert image["Config"]["User"] == "1000"
    assert image["Os"] == "linux"
    assert ok(nomad._delete(nomad._url("/images/{0}", image["Id"]),
                            params={"force": 1})).status_code == 200
    assert nomad._delete(nomad._url("/images/{0}", image["Id"]),
                         params={"force": 1}).status_code == 404
    busybox = nomad.inspect_image("busybox")["Id"]
    cid = create(nomad, go_create_body(go_host_config(NetworkMode="none"), Image="busybox",
                                       Cmd=["sleep", "600"]))
    try:
        ok(post(nomad, f"/containers/{cid}/start"))
        in_use = nomad._delete(nomad._url("/images/{0}", busybox), params={"force": 1})
        assert in_use.status_code == 409, in_use.text
    finally:
        nomad.remove_container(cid, force=True)
    archive = b"".join(nomad.get_image("busybox"))
    loaded = nomad._post(nomad._url("/images/load"), data=archive, params={"quiet": "1"},
                         headers={"Content-Type": "application/x-tar"})
    assert ok(loaded).status_code == 200
    bad = base64.urlsafe_b64encode(json.dumps({"username": "moor", "password": "wrong"}).encode())
    response = nomad._post(nomad._url("/images/create"), stream=True,
                           headers={"X-Registry-Auth": bad.decode()},
                           params={"fromImage": f"{basic_registry.host}/{repo}", "tag": "v1"})
    assert response.status_code >= 400 or b"error" in response.content


# --- cri-dockerd -------------------------------------------------------------------------

def test_cri_version_and_info(cri: docker.APIClient) -> None:
    """NewDockerService and Status: /version (API >= 1.42, semver once ".0" is added) and
    /info (DockerRootDir for imagefs, CgroupDriver, LoggingDriver, runtime handlers)."""
    version = cri.version()
    assert tuple(map(int, version["ApiVersion"].split("."))) >= (1, 42)
    info = cri.info()
    assert Path(info["DockerRootDir"]).is_dir()
    assert info["CgroupDriver"] in ("cgroupfs", "systemd")  # must equal kubelet's
    assert info["LoggingDriver"] == "json-file"  # IsCRISupportedLogDriver
    assert info["DefaultRuntime"] in info["Runtimes"]


def _sandbox_body(uid: str, oom_score_adj: int) -> dict[str, Any]:
    host = go_host_config(
        IpcMode="shareable", NetworkMode="none", OomScoreAdj=oom_score_adj,
        MemorySwap=0, CpuShares=2, SecurityOpt=["no-new-privileges"], ShmSize=64 << 20,
        PortBindings={"80/tcp": [{"HostIp": "", "HostPort": "30080"}]})
    return go_create_body(
        host, Hostname="web-0", Image="busybox:latest", Cmd=["sleep", "3600"],
        ExposedPorts={"80/tcp": {}},
        Labels={"io.kubernetes.docker.type": "podsandbox", "io.kubernetes.container.name": "POD",
                "io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "default",
                "io.kubernetes.pod.uid": uid, "annotation.kubernetes.io/config.source": "api"})


def test_cri_pod_sandbox(cri: docker.APIClient) -> None:
    """RunPodSandbox .. RemovePodSandbox. The sandbox's OomScoreAdj is -998 in cri-dockerd;
    lowering it needs CAP_SYS_RESOURCE, which root lacks on some test machines (runc and crun
    both refuse there), so this replays it with 0 (see docs/orchestrators.md)."""
    uid = str(uuid.uuid4())
    name = f"k8s_POD_web-0_default_{uid}_0"
    assert cri._get(cri._url("/images/{0}/json", "registry.k8s.io/pause:3.10")).status_code == 404
    assert "busybox:latest" in cri.inspect_image("busybox:latest")["RepoTags"]
    sandbox = create(cri, _sandbox_body(uid, 0), name)
    try:
        ok(post(cri, f"/containers/{sandbox}/start"))
        state = cri.inspect_container(sandbox)
        pid = state["State"]["Pid"]
        # GetNetNS: /proc/<pid>/ns/net is where the CNI plugin sets the pod's network up
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        # the pod's DNS: cri-dockerd rewrites the file at ResolvConfPath on the host
        Path(state["ResolvConfPath"]).write_text("nameserver 10.96.0.10\noptions ndots:5\n")
        assert "nameserver 10.96.0.10" in exec_in(cri, sandbox, "cat", "/etc/resolv.conf")
        conflict = post(cri, "/containers/create", _sandbox_body(uid, 0), name=name)
        assert conflict.status_code == 409
        match = CRI_CONFLICT.search(conflict.json()["message"])
        assert match is not None
        assert sandbox.startswith(match.group(1))
        ready = cri.containers(filters={"label": ["io.kubernetes.docker.type=podsandbox",
                                                  f"io.kubernetes.pod.uid={uid}"]})
        assert [(c["Names"][0], c["Status"][:2]) for c in ready] == [(f"/{name}", "Up")]
        assert ok(post(cri, f"/containers/{sandbox}/stop", t=10)).status_code == 204
        exited = cri.containers(all=True, filters={"id": [sandbox]})
        assert exited[0]["Status"].startswith("Exited")
        assert ok(cri._delete(cri._url("/containers/{0}", sandbox),
                              params={"v": 1, "force": 1})).status_code == 204
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            cri.remove_container(sandbox, force=True)


def _app_body(uid: str, sandbox: str, volume: Path) -> dict[str, Any]:
    volume.chmod(0o755)  # the kubelet's volume dirs are readable by the pod's user
    (volume / "token").write_text("secret")
    (volume / "token").chmod(0o644)
    (volume / "termination-log").touch()
    host = go_host_config(
        Mounts=[
            {"Type": "bind", "Source": str(volume), "Target": "/var/run/secrets/kubernetes.io",
             "ReadOnly": True, "BindOptions": {"CreateMountpoint": True, "ReadOnlyNonRecursive": True}},
            {"Type": "bind", "Source": str(volume / "termination-log"),
             "Target": "/dev/termination-log", "BindOptions": {"CreateMountpoint": True}},
            {"Type": "bind", "Source": str(volume / "missing-dir"), "Target": "/cache",
             "BindOptions": {"CreateMountpoint": True}},
        ],
        RestartPolicy={"Name": "no", "MaximumRetryCount": 0}, Memory=128 << 20,
        MemorySwap=128 << 20, CpuShares=102, CpuQuota=50000, CpuPeriod=100000,
        OomScoreAdj=1000, GroupAdd=["2000"], CapAdd=["NET_ADMIN"], CapDrop=["NET_RAW"],
        SecurityOpt=["seccomp=unconfined"], ShmSize=64 << 20, Devices=[],
        MaskedPaths=["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/timer_list",
                     "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
        ReadonlyPaths=["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        # cri-dockerd sets NetworkMode and IpcMode to container:<sandbox>: not there yet
        # (docs/orchestrators.md), so the container keeps a namespace of its own here
        NetworkMode="none")
    return go_create_body(
        host, Entrypoint=["sh", "-c"], Image="busybox:latest", WorkingDir="/", User="1000:1000",
        Cmd=["echo started; while true; do sleep 0.2; done"],
        Env=["KUBERNETES_SERVICE_HOST=10.96.0.1", "POD_NAME=web-0"],
        Healthcheck={"Test": ["NONE"]},
        Labels={"io.kubernetes.docker.type": "container", "io.kubernetes.sandbox.id": sandbox,
                "io.kubernetes.container.logpath": f"/var/log/pods/default_web-0_{uid}/app/0.log",
                "io.kubernetes.container.name": "app", "io.kubernetes.pod.uid": uid})


@pytest.fixture
def app_container(cri: docker.APIClient, tmp_path: Path) -> Iterator[tuple[str, str]]:
    uid = str(uuid.uuid4())
    sandbox = create(cri, _sandbox_body(uid, 0), f"k8s_POD_web-0_default_{uid}_0")
    ok(post(cri, f"/containers/{sandbox}/start"))
    app = create(cri, _app_body(uid, sandbox, tmp_path), f"k8s_app_web-0_default_{uid}_0")
    yield sandbox, app
    for cid in (app, sandbox):
        with contextlib.suppress(docker.errors.NotFound):  # the test may have removed it
            cri.remove_container(cid, force=True, v=True)


def test_cri_container_lifecycle(cri: docker.APIClient, app_container: tuple[str, str]) -> None:
    """CreateContainer, StartContainer (then the LogPath symlink), ContainerStatus,
    ListContainers with its filters, StopContainer, RemoveContainer."""
    sandbox, app = app_container
    ok(post(cri, f"/containers/{app}/start"))
    state = cri.inspect_container(app)
    assert state["State"]["Running"]
    assert state["State"]["Pid"] > 0
    assert state["State"]["FinishedAt"].startswith("0001-01-01")  # zero: still running
    assert state["Config"]["Labels"]["io.kubernetes.sandbox.id"] == sandbox
    assert cri.inspect_image(state["Image"])["Id"] == state["Image"]  # matchImageIDOnly
    mounts = {m["Destination"]: m for m in state["Mounts"]}
    assert mounts["/var/run/secrets/kubernetes.io"]["RW"] is False
    assert mounts["/cache"]["RW"] is True
    deadline = time.monotonic() + 20
    while not Path(state["LogPath"]).read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    first = Path(state["LogPath"]).read_text().splitlines()[0]
    assert CRI_LOG_LINE.match(first), first
    assert first.endswith(" started"), first
    inside = exec_in(cri, app, "sh", "-c", "id; cat /var/run/secrets/kubernetes.io/token; echo; "
                     "wc -c < /proc/keys; grep -c ' /proc/sys proc ro' /proc/self/mounts")
    assert "uid=1000 gid=1000 groups=1000,2000" in inside
    assert "secret\n0\n1\n" in inside
    filters = {"label": ["io.kubernetes.docker.type=container",
                         f"io.kubernetes.sandbox.id={sandbox}"],
               "status": ["running"], "id": [app]}
    listed = cri.containers(all=True, filters=filters)
    assert len(listed) == 1
    assert listed[0]["Status"].startswith("Up")
    assert listed[0]["Names"][0].startswith("/k8s_app_web-0_default_")
    assert listed[0]["Created"] > 0
    assert listed[0]["ImageID"] == state["Image"]
    assert ok(post(cri, f"/containers/{app}/stop", t=2)).status_code == 204
    stopped = cri.inspect_container(app)["State"]
    assert not stopped["Running"]
    assert stopped["Pid"] == 0
    assert stopped["ExitCode"] == 137
    assert not stopped["FinishedAt"].startswith("0001")
    exited = cri.containers(all=True, filters={**filters, "status": ["exited"]})
    assert exited[0]["Status"].startswith("Exited (137)")
    assert ok(cri._delete(cri._url("/containers/{0}", app),
                          params={"v": 1, "force": 1})).status_code == 204


def test_cri_update_resources(cri: docker.APIClient, app_container: tuple[str, str]) -> None:
    """UpdateContainerResources: a whole Resources (zeros included) and an empty
    RestartPolicy; the zeros leave the other limits alone."""
    _, app = app_container
    ok(post(cri, f"/containers/{app}/start"))
    body = go_resources(CpuPeriod=100000, CpuQuota=80000, CpuShares=256, Memory=256 << 20,
                        MemorySwap=256 << 20, CpusetCpus="0")
    body["RestartPolicy"] = {"Name": "", "MaximumRetryCount": 0}
    ok(post(cri, f"/containers/{app}/update", body))
    hc = cri.inspect_container(app)["HostConfig"]
    assert (hc["CpuQuota"], hc["CpuShares"], hc["Memory"], hc["CpusetCpus"]) == (
        80000, 256, 256 << 20, "0")
    assert hc["RestartPolicy"]["Name"] == "no"


def test_cri_exec_attach_logs_stats(cri: docker.APIClient, app_container: tuple[str, str]) -> None:
    """ExecSync/Exec (TTY resized only after the start), Attach, GetContainerLogs and
    ListContainerStats (one-shot)."""
    _, app = app_container
    ok(post(cri, f"/containers/{app}/start"))
    made = ok(post(cri, f"/containers/{app}/exec", {
        "Cmd": ["sh"], "AttachStdin": True, "AttachStdout": True, "AttachStderr": True,
        "Tty": True, "User": "", "Privileged": False, "DetachKeys": "", "Env": None,
        "WorkingDir": ""})).json()
    sock = cri.exec_start(made["Id"], tty=True, socket=True)._sock
    try:
        ok(cri._post(cri._url("/exec/{0}/resize", made["Id"]), params={"h": 24, "w": 80}))
        sock.sendall(b"stty size; exit 2\n")
        assert b"24 80" in read_until_eof(sock)
    finally:
        sock.close()
    assert wait_exec_done(cri, made["Id"])["ExitCode"] == 2
    probe = ok(post(cri, f"/containers/{app}/exec", {
        "Cmd": ["sh", "-c", "exit 1"], "AttachStdout": True, "AttachStderr": True})).json()
    cri.exec_start(probe["Id"])
    assert cri.exec_inspect(probe["Id"])["ExitCode"] == 1
    attached = cri._post(cri._url("/containers/{0}/attach", app), stream=True,
                         params={"stream": 1, "stdin": 1, "stdout": 1, "stderr": 1})
    assert ok(attached).status_code in (101, 200)
    attached.close()
    logs = ok(cri._get(cri._url("/containers/{0}/logs", app), params={
        "stdout": 1, "stderr": 1, "since": 0, "timestamps": 1, "tail": 1})).content
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\S+Z started\n", demux(logs)[0]), logs
    stats = ok(cri._get(cri._url("/containers/{0}/stats", app),
                        params={"stream": "0", "one-shot": "1"})).json()
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert stats["memory_stats"]["usage"] > 0


def test_cri_images(cri: docker.APIClient, basic_registry: Registry) -> None:
    """PullImage (X-Registry-Auth from the CRI request), ListImages (by reference; all with
    shared sizes for ImageFsInfo), ImageStatus (inspect + history), RemoveImage (each tag
    and digest; not found is fine)."""
    creds = (basic_registry.username, basic_registry.password)
    repo = f"orch-cri-{uuid.uuid4().hex[:6]}"
    pushed = make_image(basic_registry, repo, "1.0", [make_layer_tar({"app": b"kube"})],
                        config={"User": "65532"}, auth=creds)
    lines = pull(cri, f"{basic_registry.host}/{repo}", "1.0", registry_auth(basic_registry))
    assert not [x for x in lines if "error" in x], lines
    listed = cri.images(filters={"reference": pushed.ref})
    assert [i["RepoTags"] for i in listed] == [[pushed.ref]]
    every = ok(cri._get(cri._url("/images/json"), params={"all": 1, "shared-size": 1})).json()
    assert all(i["Size"] > 0 and (i["SharedSize"] == -1 or i["SharedSize"] >= 0) for i in every)
    image = cri.inspect_image(pushed.ref)
    assert image["RepoDigests"] == [pushed.digest_ref]
    assert image["Config"]["User"] == "65532"
    assert image["RootFS"]["Layers"]
    parse_go_time(image["Created"])
    history = cri.history(image["Id"])
    assert history
    assert all(isinstance(h["Created"], int) for h in history)
    for ref in (*image["RepoTags"], *image["RepoDigests"]):
        # unescaped, as Go's client sends it ("@" stays as it is in a path)
        gone = cri._delete(f"{cri.base_url}/v{CRI_API}/images/{ref}")
        assert gone.status_code in (200, 404), gone.text
    assert cri._get(cri._url("/images/{0}/json", image["Id"])).status_code == 404
