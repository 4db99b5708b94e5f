"""`--pid`, `--ipc`, `--uts` and `--cgroupns` through the stock docker CLI and the docker SDK
against a real moord: each mode puts the container in the namespace it names (compared by
the namespace's inode, as the kernel shows it in /proc/<pid>/ns), IPC sharing carries
/dev/shm, and dockerd's refusals come with its words.
"""

from __future__ import annotations

import os
import socket

import docker
import pytest

from tests.integration.test_networks import containers, unique
from tests.support.daemon import Moord

pytestmark = pytest.mark.integration


def run(d: Moord, *args: str) -> str:
    return d.docker("run", "--rm", *args, timeout=120).stdout.strip()


def ns_in(d: Moord, name: str, kind: str) -> str:
    return d.docker("exec", name, "readlink", f"/proc/self/ns/{kind}").stdout.strip()


def sleeper(d: Moord, made: list[str], *args: str) -> str:
    name = unique("ns")
    made.append(name)
    d.docker("run", "-d", "--name", name, *args, "busybox", "sleep", "300")
    return name


def test_host_modes_share_the_hosts_namespaces(moord: Moord) -> None:
    for kind, flag in (("pid", "--pid"), ("ipc", "--ipc"), ("uts", "--uts"),
                       ("cgroup", "--cgroupns")):
        host_ns = os.readlink(f"/proc/self/ns/{kind}")
        assert run(moord, flag, "host", "busybox", "readlink", f"/proc/self/ns/{kind}") == host_ns
        # without the flag (cgroupns: "private" asked) the container has its own
        own = ["--cgroupns", "private"] if kind == "cgroup" else []
        assert run(moord, *own, "busybox", "readlink", f"/proc/self/ns/{kind}") != host_ns
    assert run(moord, "--uts", "host", "busybox", "hostname") == socket.gethostname()
    assert run(moord, "--uts", "host", "busybox", "cat", "/etc/hostname") == socket.gethostname()
    with open("/proc/1/comm") as f:
        assert run(moord, "--pid", "host", "busybox", "cat", "/proc/1/comm") == f.read().strip()
    # the host's /dev/shm: a file made there shows in the container
    marker = f"/dev/shm/moorage-test-{unique('shm')}"
    with open(marker, "w") as f:
        f.write("from the host")
    try:
        assert run(moord, "--ipc", "host", "busybox", "cat", marker) == "from the host"
    finally:
        os.unlink(marker)


def test_container_modes_join_another_containers_namespaces(moord: Moord) -> None:
    with containers(moord) as made:
        donor = sleeper(moord, made, "--ipc", "shareable")
        moord.docker("exec", donor, "sh", "-c", "echo shared > /dev/shm/note")
        joiner = sleeper(moord, made, "--pid", f"container:{donor}", "--ipc",
                         f"container:{donor}")
        for kind in ("pid", "ipc"):
            assert ns_in(moord, joiner, kind) == ns_in(moord, donor, kind)
        assert ns_in(moord, joiner, "mnt") != ns_in(moord, donor, "mnt")
        # the donor's /dev/shm and processes are the joiner's
        assert moord.docker("exec", joiner, "cat", "/dev/shm/note").stdout.strip() == "shared"
        ps = moord.docker("exec", joiner, "ps", "-o", "args").stdout
        assert ps.count("sleep 300") == 2

        private = sleeper(moord, made)  # IpcMode private: Docker's default, not shareable
        result = moord.docker("run", "--rm", "--ipc", f"container:{private}", "busybox", "true",
                              check=False)
        assert result.returncode != 0
        assert "non-shareable IPC (hint: use IpcMode:shareable for the donor container)" \
            in result.stderr
        moord.docker("stop", "-t", "0", donor, joiner)
        result = moord.docker("start", joiner, check=False)
        assert result.returncode != 0
        assert "cannot join IPC of a non running container" in result.stderr
        # the donor's /dev/shm went with it
        assert not os.path.ismount(moord.docker(
            "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", donor).stdout.strip()
            .removesuffix("/upper") + "/shm")


def test_modes_show_in_inspect_and_bad_ones_are_refused(moord: Moord) -> None:
    client = docker.DockerClient(base_url=f"unix://{moord.socket_path}", version="1.45")
    with containers(moord) as made:
        name = unique("ns")
        made.append(name)
        client.containers.create("busybox", "true", name=name, pid_mode="host",
                                 ipc_mode="shareable", uts_mode="host", cgroupns="private")
        hc = client.api.inspect_container(name)["HostConfig"]
        assert (hc["PidMode"], hc["IpcMode"], hc["UTSMode"], hc["CgroupnsMode"]) == \
            ("host", "shareable", "host", "private")
        for kwargs, message in (({"ipc_mode": "bogus"}, "invalid IPC mode: bogus"),
                                ({"pid_mode": "container:"}, "invalid PID mode: container:"),
                                ({"cgroupns": "shared"}, "invalid cgroup namespace mode: shared"),
                                ({"uts_mode": "host", "hostname": "h"},
                                 "conflicting options: hostname and the UTS mode")):
            with pytest.raises(docker.errors.APIError) as caught:
                client.containers.create("busybox", "true", **kwargs)
            assert caught.value.status_code == 400
            assert message in str(caught.value.explanation)
    client.close()
