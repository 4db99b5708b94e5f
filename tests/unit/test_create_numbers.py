"""Numbers in a create request: Go's integer types (what dockerd's JSON decoder refuses)
and dockerd's own ranges, declared once in engine/limits.py."""

from __future__ import annotations

import os
from typing import Any

import pytest

from engine.api.wire.containers import parse_create, parse_update
from engine.containers.create import validate
from engine.containers.model import HostSpec
from engine.containers.resources import check_limits
from engine.errors import InvalidParameter
from engine.limits import HOST_NUMBERS, INT64, LIMITS, UINT16, Applies, Bounds

BIG = 2**63


def _create(host: dict[str, Any] | None = None, **config: Any) -> None:
    spec, hostspec = parse_create({"Image": "busybox", **config, "HostConfig": host or {}})
    validate(spec, hostspec)


@pytest.mark.parametrize(("host", "config", "message"), [
    ({"CpuShares": BIG}, {}, "invalid JSON: json: cannot unmarshal number 9223372036854775808 "
                             "into Go struct field HostConfig.CpuShares of type int64"),
    ({"Memory": -BIG - 1}, {}, "into Go struct field HostConfig.Memory of type int64"),
    ({"PidsLimit": BIG}, {}, "HostConfig.PidsLimit of type int64"),
    ({"BlkioWeight": 70000}, {}, "HostConfig.BlkioWeight of type uint16"),
    ({"BlkioWeight": -1}, {}, "HostConfig.BlkioWeight of type uint16"),
    ({"OomScoreAdj": BIG}, {}, "HostConfig.OomScoreAdj of type int"),
    ({"ShmSize": BIG}, {}, "HostConfig.ShmSize of type int64"),
    ({"IOMaximumIOps": -1}, {}, "HostConfig.IOMaximumIOps of type uint64"),
    ({"Ulimits": [{"Name": "nofile", "Soft": BIG, "Hard": 1}]}, {},
     "Go struct field HostConfig.Ulimits.Soft"),
    ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": BIG}}, {},
     "HostConfig.RestartPolicy.MaximumRetryCount of type int"),
    ({}, {"StopTimeout": BIG}, "Go struct field StopTimeout of type int"),
    ({}, {"Healthcheck": {"Test": ["CMD", "true"], "Interval": BIG}}, "Interval of type int64"),
    # dockerd's own ranges, in its words
    ({"CpuShares": -5}, {}, "invalid CPU shares (-5): value must be a positive integer"),
    ({"Memory": 1000}, {}, "Minimum memory limit allowed is 6MB"),
    ({"MemoryReservation": 1000}, {}, "Minimum memory reservation allowed is 6MB"),
    ({"CpuPeriod": 999}, {}, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger "
                             "than 1s (i.e. 1000000)"),
    ({"CpuPeriod": 1_000_001}, {}, "CPU cfs period can not be less than 1ms"),
    ({"CpuQuota": 999}, {}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    ({"BlkioWeight": 5}, {}, "Range of blkio weight is from 10 to 1000"),
    ({"BlkioWeight": 1001}, {}, "Range of blkio weight is from 10 to 1000"),
    ({"OomScoreAdj": 1001}, {}, "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
    ({"OomScoreAdj": -1001}, {}, "Invalid value -1001, range for oom score adj is [-1000, 1000]"),
    ({"MemorySwappiness": 101}, {}, "Invalid value: 101, valid memory swappiness range is 0-100"),
    ({"MemorySwappiness": -2}, {}, "Invalid value: -2, valid memory swappiness range is 0-100"),
    ({"ShmSize": -1}, {}, "SHM size can not be less than 0"),
    ({}, {"Hostname": "h" * 65},
     f'hostname "{"h" * 65}" is too long (maximum 64 bytes)'),
])
def test_out_of_range_numbers_are_400s(host: dict[str, Any], config: dict[str, Any],
                                       message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        _create(host, **config)
    assert message in info.value.message


@pytest.mark.parametrize("host", [
    {"CpuShares": BIG - 1}, {"CpuShares": 2}, {"Memory": 6 * 1024 * 1024},
    {"MemoryReservation": -1}, {"CpuQuota": -1}, {"PidsLimit": -1}, {"PidsLimit": BIG - 1},
    {"BlkioWeight": 0}, {"BlkioWeight": 10}, {"OomScoreAdj": -1000}, {"OomScoreAdj": 1000},
    {"MemorySwappiness": -1}, {"MemorySwappiness": None}, {"MemorySwappiness": 0},
    {"MemorySwappiness": 100}, {"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 1024}]},
])
def test_in_range_numbers_pass(host: dict[str, Any]) -> None:
    _create(host, Hostname="h" * 64)


def test_update_takes_the_same_ranges() -> None:
    with pytest.raises(InvalidParameter, match="of type int64"):
        parse_update({"CpuShares": BIG})
    _, update = parse_update({"CpuShares": 512})
    assert update.cpu_shares == 512
    host = HostSpec(memory_reservation=1024)
    with pytest.raises(InvalidParameter, match="Minimum memory reservation allowed is 6MB"):
        check_limits(host, len(os.sched_getaffinity(0)))


def test_the_declarations() -> None:
    assert all(limit.go_type is INT64 for limit in LIMITS if not isinstance(limit.default, str | bool))
    assert HOST_NUMBERS["BlkioWeight"].go_type is UINT16
    bounds = Bounds(10, 20, "out: {value}", Applies.POSITIVE)
    assert bounds.violated_by(0) is None
    assert bounds.violated_by(-3) is None
    assert bounds.violated_by(None) is None
    assert bounds.violated_by(21) == "out: 21"
    assert Bounds(0, 5, "x", Applies.ALWAYS, unset=-1).violated_by(-1) is None
    assert Bounds(0, 5, "x {value}", Applies.ALWAYS).violated_by(-1) == "x -1"
