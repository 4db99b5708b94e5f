"""`docker update` rules: what changes, what stays, and Docker's refusals."""

from __future__ import annotations

import pytest

from engine.api.wire.containers import parse_update
from engine.containers.model import HostSpec
from engine.containers.resources import ResourceUpdate, check_limits, updated_host
from engine.errors import Conflict, InvalidParameter

MIB = 1024 * 1024


def test_zero_and_absent_keep_values() -> None:
    host = HostSpec(memory=64 * MIB, memory_swap=128 * MIB, cpu_shares=512, pids_limit=50)
    new = updated_host(host, ResourceUpdate(cpu_shares=256), online_cpus=2)
    assert (new.memory, new.memory_swap, new.cpu_shares, new.pids_limit) == (
        64 * MIB, 128 * MIB, 256, 50)
    assert host.cpu_shares == 512, "the current record is not touched"


def test_memory_above_the_swap_already_set_needs_the_swap() -> None:
    host = HostSpec(memory=64 * MIB, memory_swap=128 * MIB)
    with pytest.raises(Conflict, match="Memory limit should be smaller than already set "
                                       "memoryswap limit"):
        updated_host(host, ResourceUpdate(memory=256 * MIB), online_cpus=2)
    new = updated_host(host, ResourceUpdate(memory=256 * MIB, memory_swap=512 * MIB), 2)
    assert (new.memory, new.memory_swap) == (256 * MIB, 512 * MIB)
    assert updated_host(host, ResourceUpdate(memory=100 * MIB), 2).memory_swap == 128 * MIB


def test_first_memory_limit_gets_create_s_swap() -> None:
    new = updated_host(HostSpec(), ResourceUpdate(memory=32 * MIB), online_cpus=2)
    assert (new.memory, new.memory_swap) == (32 * MIB, 64 * MIB)


def test_unlimited_swap_stays() -> None:
    new = updated_host(HostSpec(memory=32 * MIB, memory_swap=-1),
                       ResourceUpdate(memory=64 * MIB), online_cpus=2)
    assert new.memory_swap == -1


@pytest.mark.parametrize(("host", "update", "message"), [
    (HostSpec(cpu_period=100_000), ResourceUpdate(nano_cpus=10**9),
     "Nano CPUs cannot be updated as CPU Period has already been set"),
    (HostSpec(cpu_quota=50_000), ResourceUpdate(nano_cpus=10**9),
     "Nano CPUs cannot be updated as CPU Quota has already been set"),
    (HostSpec(nano_cpus=10**9), ResourceUpdate(cpu_period=100_000),
     "CPU Period cannot be updated as NanoCPUs has already been set"),
    (HostSpec(nano_cpus=10**9), ResourceUpdate(cpu_quota=50_000),
     "CPU Quota cannot be updated as NanoCPUs has already been set"),
])
def test_nano_cpus_and_cfs_exclude_each_other(host: HostSpec, update: ResourceUpdate,
                                              message: str) -> None:
    with pytest.raises(Conflict, match=message):
        updated_host(host, update, online_cpus=2)


@pytest.mark.parametrize(("host", "message"), [
    (HostSpec(memory=5 * MIB), "Minimum memory limit allowed is 6MB"),
    (HostSpec(memory=64 * MIB, memory_swap=32 * MIB), "Minimum memoryswap limit should be larger"),
    (HostSpec(memory_swap=32 * MIB), "You should always set the Memory limit"),
    (HostSpec(memory=64 * MIB, memory_reservation=128 * MIB),
     "Minimum memory limit can not be less than memory reservation"),
    (HostSpec(nano_cpus=3 * 10**9), r"Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs"),
    (HostSpec(cpu_period=500), "CPU cfs period can not be less than 1ms"),
    (HostSpec(cpuset_cpus="0-3"), "Requested CPUs are not available - requested 0-3, available: 0-1"),
    (HostSpec(cpuset_cpus="1-0"), "Invalid value 1-0 for cpuset cpus"),
    (HostSpec(nano_cpus=10**9, cpu_quota=5000), "Nano CPUs and CPU Quota cannot both be set"),
    (HostSpec(nano_cpus=10**9, cpu_period=5000), "Nano CPUs and CPU Period cannot both be set"),
])
def test_limits_docker_refuses(host: HostSpec, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        check_limits(host, online_cpus=2)


def test_parse_update_as_the_docker_cli_sends_it() -> None:
    body = {"BlkioWeight": 0, "CpuShares": 0, "Memory": 33554432, "NanoCpus": 500000000,
            "CpusetCpus": "", "PidsLimit": None, "MemorySwap": 67108864, "Ulimits": None,
            "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}}
    policy, update = parse_update(body)
    assert policy is None
    assert update == ResourceUpdate(memory=33554432, memory_swap=67108864, nano_cpus=500000000)
    _, unlimited = parse_update({"PidsLimit": -1})
    assert unlimited.pids_limit == -1
    with pytest.raises(InvalidParameter, match="updating BlkioWeight is not supported"):
        parse_update({"BlkioWeight": 300})
