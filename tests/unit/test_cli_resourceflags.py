"""moor's resource flags, parsed as the docker CLI parses them."""

from __future__ import annotations

import pytest

from engine.cli.options import OptionError
from engine.cli.resourceflags import ResourceFlags, parse_cpus, parse_ulimit


def test_fields_as_docker_writes_them() -> None:
    flags = ResourceFlags.from_params({
        "memory": "32m", "memory_swap": "-1", "cpus": "1.5", "cpu_shares": 512,
        "cpuset_cpus": "0", "pids_limit": 0, "shm_size": "128m", "oom_kill_disable": True,
        "ulimits": ("nofile=1024:2048", "nproc=100")})
    assert flags.fields() == {
        "Memory": 32 * 1024 * 1024, "MemorySwap": -1, "NanoCpus": 1_500_000_000,
        "CpuShares": 512, "CpusetCpus": "0", "ShmSize": 128 * 1024 * 1024, "PidsLimit": 0,
        "OomKillDisable": True,
        "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048},
                    {"Name": "nproc", "Soft": 100, "Hard": 100}]}
    assert ResourceFlags.from_params({}).fields() == {}


@pytest.mark.parametrize(("text", "nano"), [("0.5", 500_000_000), ("2", 2_000_000_000),
                                            ("0.000000001", 1), ("", 0)])
def test_cpus(text: str, nano: int) -> None:
    assert parse_cpus(text) == nano


@pytest.mark.parametrize(("params", "message"), [
    ({"cpus": "0.0000000001"}, "value is too precise"),
    ({"cpus": "x"}, "failed to parse x as a rational number"),
    ({"cpus": "1", "cpu_quota": 5000}, "--cpus and --cpu-period/--cpu-quota cannot both be set"),
    ({"memory": "lots"}, "invalid size: 'lots'"),
])
def test_refusals(params: dict[str, object], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        ResourceFlags.from_params(params)


@pytest.mark.parametrize("text", ["nofile", "=1", "nofile=a", "nofile=10:5"])
def test_bad_ulimits(text: str) -> None:
    with pytest.raises(OptionError, match="--ulimit"):
        parse_ulimit(text)
