"""`docker update` of resource limits: applied to a running container's cgroup at once,
kept for the next start, refused in Docker's words; also through docker-py."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.runtime import cgroups
from tests.support.daemon import Moord

pytestmark = [pytest.mark.integration, pytest.mark.cgroup_v2]

MIB = 1024 * 1024


@pytest.fixture
def name(moord: Moord) -> Iterator[str]:
    chosen = f"upd-{secrets.token_hex(3)}"
    yield chosen
    moord.docker("rm", "-f", chosen, check=False)


def knob(moord: Moord, container: str, controller: str, filename: str) -> str:
    """A cgroup file of the container, read on the host (cgroup v1 or v2)."""
    full_id = moord.docker("inspect", "--format", "{{.Id}}", container).stdout.strip()
    layout = cgroups.detect()
    rel = Path(moord.cgroup_parent.strip("/")) / full_id
    if layout.version == 2 and layout.unified_mount is not None:
        return (layout.unified_mount / rel / filename).read_text().strip()
    for names, mount in layout.v1_mounts:
        if controller in names.split(","):
            return (mount / rel / filename).read_text().strip()
    raise AssertionError(f"no v1 hierarchy has the {controller} controller")


def v2() -> bool:
    return cgroups.detect().version == 2


def limits(moord: Moord, container: str) -> dict[str, str]:
    if v2():
        return {"memory": knob(moord, container, "memory", "memory.max"),
                "swap": knob(moord, container, "memory", "memory.swap.max"),
                "cpu": knob(moord, container, "cpu", "cpu.max"),
                "pids": knob(moord, container, "pids", "pids.max")}
    return {"memory": knob(moord, container, "memory", "memory.limit_in_bytes"),
            "swap": knob(moord, container, "memory", "memory.memsw.limit_in_bytes"),
            "cpu": knob(moord, container, "cpu", "cpu.cfs_quota_us") + " "
            + knob(moord, container, "cpu", "cpu.cfs_period_us"),
            "pids": knob(moord, container, "pids", "pids.max")}


def test_update_applies_to_a_running_container_and_survives_a_restart(
        moord: Moord, name: str) -> None:
    moord.docker("run", "-d", "--name", name, "busybox", "sleep", "300")
    moord.docker("update", "--memory", "32m", "--memory-swap", "64m", "--cpus", "0.5",
                 "--cpu-shares", "512", "--pids-limit", "40", name)
    swap = str(32 * MIB) if v2() else str(64 * MIB)  # v2: swap beyond memory; v1: memory plus swap
    expected = {"memory": str(32 * MIB), "swap": swap, "cpu": "50000 100000", "pids": "40"}
    assert limits(moord, name) == expected
    if not v2():
        assert knob(moord, name, "cpu", "cpu.shares") == "512"
    host = moord.docker("inspect", "--format",
                        "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} "
                        "{{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}}", name).stdout.split()
    assert host == [str(32 * MIB), str(64 * MIB), "500000000", "512", "40"]
    usage = moord.docker("stats", "--no-stream", "--format", "{{.MemUsage}}", name).stdout
    assert usage.strip().endswith("/ 32MiB")

    moord.docker("restart", "-t", "0", name)
    assert limits(moord, name) == expected

    moord.docker("update", "--pids-limit", "-1", name)
    assert limits(moord, name)["pids"] == "max"


def test_update_of_a_paused_container_made_by_the_docker_cli(moord: Moord, name: str) -> None:
    """The docker CLI creates with PidsLimit 0 (no limit): the update must not hand the
    runtime a pids limit of -1, which cgroup v1 refuses; a paused container updates."""
    moord.docker("run", "-d", "--name", name, "busybox", "sleep", "300")
    moord.docker("pause", name)
    moord.docker("update", "--memory", "30m", "--memory-swap", "60m", "--restart", "always", name)
    assert limits(moord, name)["memory"] == str(30 * MIB)
    assert moord.docker("inspect", "--format", "{{.HostConfig.RestartPolicy.Name}} {{.State.Status}}",
                        name).stdout.split() == ["always", "paused"]
    moord.docker("unpause", name)
    both = moord.docker("update", "--cpus", "0.5", "--cpu-quota", "1000", name, check=False)
    assert both.returncode == 1
    assert "Conflicting options: Nano CPUs and CPU Quota cannot both be set" in both.stderr


def test_update_of_a_stopped_container_applies_at_start(moord: Moord, name: str) -> None:
    moord.docker("create", "--name", name, "busybox", "sleep", "300")
    moord.docker("update", "--memory", "48m", name)  # no limit before: swap becomes twice that
    moord.docker("start", name)
    assert limits(moord, name)["memory"] == str(48 * MIB)
    assert moord.docker("inspect", "--format", "{{.HostConfig.MemorySwap}}",
                        name).stdout.strip() == str(96 * MIB)


def test_refusals_in_docker_s_words(moord: Moord, name: str) -> None:
    moord.docker("run", "-d", "--name", name, "--memory", "32m", "busybox", "sleep", "300")
    over_swap = moord.docker("update", "--memory", "256m", name, check=False)
    assert over_swap.returncode == 1
    assert "Memory limit should be smaller than already set memoryswap limit" in over_swap.stderr
    too_many = moord.docker("update", "--cpus", "64", name, check=False)
    assert too_many.returncode == 1
    assert "Range of CPUs is from 0.01 to" in too_many.stderr
    missing = moord.docker("update", "--memory", "64m", "no-such-container", check=False)
    assert "No such container: no-such-container" in missing.stderr
    assert limits(moord, name)["memory"] == str(32 * MIB), "a refused update changes nothing"
    refused_run = moord.docker("run", "--rm", "--cpuset-cpus", "0-999", "busybox", "true",
                               check=False)
    assert refused_run.returncode == 125
    assert "Requested CPUs are not available - requested 0-999" in refused_run.stderr


def test_update_with_docker_py(moord: Moord, name: str) -> None:
    import docker

    client = docker.DockerClient(base_url=moord.host, version="1.43")
    try:
        container = client.containers.run("busybox", ["sleep", "300"], name=name, detach=True)
        container.update(mem_limit="24m", memswap_limit="48m", cpu_quota=20000,
                         cpu_period=100000)
        assert limits(moord, name)["memory"] == str(24 * MIB)
        assert limits(moord, name)["cpu"] == "20000 100000"
        container.reload()
        assert container.attrs["HostConfig"]["Memory"] == 24 * MIB
    finally:
        client.close()


def test_moor_run_and_update_limits(moord: Moord, name: str) -> None:
    import subprocess

    from tests.integration.test_moor_cli import moor_argv

    def moor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*moor_argv(), *args], env=moord.env, capture_output=True,
                              text=True, timeout=60)

    started = moor("run", "-d", "--name", name, "-m", "40m", "--cpus", "0.25", "--pids-limit",
                   "30", "--ulimit", "nofile=512:1024", "--shm-size", "8m", "busybox", "sleep", "300")
    assert started.returncode == 0, started.stderr
    assert limits(moord, name) == {"memory": str(40 * MIB),
                                   "swap": str(40 * MIB) if v2() else str(80 * MIB),
                                   "cpu": "25000 100000", "pids": "30"}
    inside = moord.docker("exec", name, "sh", "-c",
                          "ulimit -Sn; ulimit -Hn; df -k /dev/shm | tail -1").stdout.split()
    assert inside[:2] == ["512", "1024"]
    assert inside[3] == "8192"  # /dev/shm's size in KiB
    updated = moor("update", "--memory", "50m", "--memory-swap", "100m", "--cpus", "0.75", name)
    assert (updated.returncode, updated.stdout) == (0, f"{name}\n"), updated.stderr
    assert limits(moord, name)["memory"] == str(50 * MIB)
    assert limits(moord, name)["cpu"] == "75000 100000"
    refused = moor("update", "--memory", "500m", name)
    assert refused.returncode == 1
    assert "Memory limit should be smaller than already set memoryswap limit" in refused.stderr
