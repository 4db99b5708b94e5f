"""`docker stats` against moord: the numbers come from the container's cgroup and move
with what it does."""

from __future__ import annotations

import secrets

import pytest

from tests.support.daemon import Moord

pytestmark = [pytest.mark.integration, pytest.mark.cgroup_v2]


def test_stats_move_with_a_busy_container(moord: Moord) -> None:
    busy = f"busy-{secrets.token_hex(3)}"
    idle = f"idle-{secrets.token_hex(3)}"
    moord.docker("run", "-d", "--name", busy, "--memory", "64m", "--pids-limit", "50",
                 "busybox", "sh", "-c", "while :; do :; done")
    moord.docker("run", "-d", "--name", idle, "busybox", "sleep", "300")
    try:
        fmt = "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}"
        rows = {}
        for line in moord.docker("stats", "--no-stream", "--format", fmt, busy, idle
                                 ).stdout.splitlines():
            name, cpu, *rest = line.split()
            rows[name] = (float(cpu.rstrip("%")), " ".join(rest))
        assert rows[busy][0] > 20.0, rows
        assert rows[idle][0] < 5.0, rows
        assert "64MiB" in rows[busy][1], rows
        assert rows[busy][1].split()[-1] == "1", rows  # one process: the loop
        import docker

        client = docker.DockerClient(base_url=f"unix://{moord.socket_path}", version="1.43")
        raw = client.api.stats(busy, stream=False)
        cpu, precpu = raw["cpu_stats"]["cpu_usage"], raw["precpu_stats"]["cpu_usage"]
        assert cpu["total_usage"] > precpu["total_usage"]
        assert raw["memory_stats"]["usage"] > 0
        assert raw["memory_stats"]["limit"] == 64 * 1024 * 1024
        assert raw["pids_stats"] == {"current": 1, "limit": 50}
        assert "eth0" in raw["networks"]
        stream = client.api.stats(idle, stream=True, decode=True)
        first, second = next(stream), next(stream)
        assert second["read"] > first["read"]
        client.close()
    finally:
        moord.docker("rm", "-f", busy, idle, check=False)
