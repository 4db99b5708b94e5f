"""Resource limits are declared once (`engine.limits`): the records, Docker's JSON, moor's
flags and `docker update` all follow the declaration; stored records keep their shape."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import attrs
import click
import pytest

from engine.api.wire.containers import host_config_json, parse_create, parse_update
from engine.cli.resourceflags import ResourceFlags, click_options
from engine.containers.model import Container, ContainerSpec, HostSpec
from engine.containers.resources import ResourceUpdate
from engine.limits import LIMITS, Resources
from engine.store import RecordStore, converter

MIB = 1024 * 1024

#: A container record as moord wrote it before the limits had a declaration of their own
#: (the limits flat in "host"), trimmed to what matters.
OLD_RECORD = {
    "id": "c" * 64, "name": "old", "created": "2024-05-01T10:00:00+00:00",
    "image_id": "sha256:" + "a" * 64, "path": "sleep", "args": ["60"], "runtime": "crun",
    "spec": {"image": "busybox", "cmd": ["sleep", "60"]},
    "host": {
        "network_mode": "bridge", "shm_size": 67108864,
        "ulimits": [{"name": "nofile", "soft": 1024, "hard": 2048}],
        "memory": 64 * MIB, "memory_swap": 128 * MIB, "memory_reservation": 32 * MIB,
        "nano_cpus": 500_000_000, "cpu_shares": 512, "cpu_period": 0, "cpu_quota": 0,
        "cpuset_cpus": "0", "cpuset_mems": "", "pids_limit": 50, "oom_kill_disable": True,
        "oom_score_adj": 0,
    },
    "state": {"status": "exited", "exit_code": 0},
}

EVERY_LIMIT: dict[str, Any] = {
    "CpuShares": 512, "Memory": 64 * MIB, "NanoCpus": 1_500_000_000, "CpuPeriod": 0,
    "CpuQuota": 0, "CpusetCpus": "0-1", "CpusetMems": "0", "MemoryReservation": 32 * MIB,
    "MemorySwap": 128 * MIB, "OomKillDisable": True, "PidsLimit": 99,
}


def test_a_record_in_the_old_flat_shape_loads(tmp_path: Path) -> None:
    (tmp_path / ("c" * 64 + ".json")).write_text(json.dumps(OLD_RECORD))
    store: RecordStore[Container] = RecordStore(tmp_path, Container, durable=False)
    [c] = store.load_all().values()
    assert c.created == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    assert (c.host.memory, c.host.memory_swap, c.host.memory_reservation) == (
        64 * MIB, 128 * MIB, 32 * MIB)
    assert (c.host.nano_cpus, c.host.cpu_shares, c.host.cpuset_cpus) == (500_000_000, 512, "0")
    assert (c.host.pids_limit, c.host.oom_kill_disable) == (50, True)
    assert c.host.limits() == Resources(
        cpu_shares=512, memory=64 * MIB, nano_cpus=500_000_000, cpuset_cpus="0",
        memory_reservation=32 * MIB, memory_swap=128 * MIB, oom_kill_disable=True,
        pids_limit=50)


def test_records_keep_the_limits_flat() -> None:
    host = converter.unstructure(HostSpec(memory=64 * MIB, pids_limit=5), HostSpec)
    assert (host["memory"], host["pids_limit"], host["shm_size"]) == (64 * MIB, 5, 64 * MIB)
    assert set(OLD_RECORD["host"]) <= set(host)  # type: ignore[arg-type]


def test_every_limit_goes_through_the_wire_both_ways() -> None:
    assert {limit.key for limit in LIMITS} == set(EVERY_LIMIT)
    _, host = parse_create({"Image": "busybox", "HostConfig": dict(EVERY_LIMIT)})
    c = Container(id="c" * 64, name="x", created=dt.datetime.now(dt.UTC), image_id="i",
                  spec=ContainerSpec("busybox"), host=host, path="sh", args=[], runtime="crun")
    out = host_config_json(c)
    assert {key: out[key] for key in EVERY_LIMIT} == EVERY_LIMIT


def test_a_limit_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(Exception, match="PidsLimit: expected an integer"):
        parse_create({"Image": "busybox", "HostConfig": {"PidsLimit": "many"}})
    with pytest.raises(TypeError):
        Resources(memory="64m")  # type: ignore[arg-type]


def test_update_takes_the_updatable_limits_and_the_nanocpus_alias() -> None:
    _, update = parse_update({"NanoCPUs": 2_000_000_000, "CpusetMems": "0"})
    assert update == ResourceUpdate(nano_cpus=2_000_000_000, cpuset_mems="0")
    assert update.changes() == {"nano_cpus": 2_000_000_000, "cpuset_mems": "0"}
    with pytest.raises(Exception, match="updating OomKillDisable is not supported"):
        parse_update({"OomKillDisable": True})
    assert ResourceUpdate(oom_kill_disable=True).is_empty()


def _flags(options: list[Any]) -> list[str]:
    """The long flags in `--help`'s order, the decorators applied as moor applies them."""
    def run(**_: Any) -> None:
        pass

    for option in reversed(options):
        run = option(run)
    command = click.command()(run)
    return [opt for param in command.params for opt in param.opts if opt.startswith("--")]


def test_moor_s_flags_follow_the_declarations() -> None:
    assert _flags(click_options()) == [
        "--cpu-period", "--cpu-quota", "--cpu-shares", "--cpus", "--cpuset-cpus",
        "--cpuset-mems", "--memory", "--memory-reservation", "--memory-swap", "--pids-limit",
        "--oom-kill-disable", "--shm-size", "--ulimit"]
    assert "--oom-kill-disable" not in _flags(click_options(for_update=True))
    every = ResourceFlags(limits=attrs.evolve(Resources(), **{
        limit.name: value for limit in LIMITS
        for key, value in EVERY_LIMIT.items() if key == limit.key}))
    assert every.fields() == {k: v for k, v in EVERY_LIMIT.items() if v}
