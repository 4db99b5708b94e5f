"""The resource flags of `moor run/create/update`: memory, CPU, pids, ulimits, shm —
parsed as the docker CLI parses them and written into `HostConfig` (or the body of
`POST /containers/{id}/update`, which has the same field names)."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import attrs
import click

from engine.cli.options import OptionError
from engine.units import ram_in_bytes


def click_options(for_update: bool = False) -> list[Any]:
    """The flags as click decorators; `update` has no --ulimit, --shm-size or
    --oom-kill-disable (Docker's update cannot change them either)."""
    common = [
        click.option("--cpu-period", type=int, default=0, metavar="INT",
                     help="Limit CPU CFS (Completely Fair Scheduler) period"),
        click.option("--cpu-quota", type=int, default=0, metavar="INT",
                     help="Limit CPU CFS (Completely Fair Scheduler) quota"),
        click.option("-c", "--cpu-shares", type=int, default=0, metavar="INT",
                     help="CPU shares (relative weight)"),
        click.option("--cpus", default="", metavar="DECIMAL", help="Number of CPUs"),
        click.option("--cpuset-cpus", default="", metavar="STRING",
                     help="CPUs in which to allow execution (0-3, 0,1)"),
        click.option("--cpuset-mems", default="", metavar="STRING",
                     help="MEMs in which to allow execution (0-3, 0,1)"),
        click.option("-m", "--memory", default="", metavar="BYTES", help="Memory limit"),
        click.option("--memory-reservation", default="", metavar="BYTES",
                     help="Memory soft limit"),
        click.option("--memory-swap", default="", metavar="BYTES",
                     help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
        click.option("--pids-limit", type=int, default=None, metavar="INT",
                     help="Tune container pids limit (set -1 for unlimited)"),
    ]
    if for_update:
        return common
    return [
        *common,
        click.option("--oom-kill-disable", is_flag=True, help="Disable OOM Killer"),
        click.option("--shm-size", default="", metavar="BYTES", help="Size of /dev/shm"),
        click.option("--ulimit", "ulimits", multiple=True, metavar="ULIMIT",
                     help="Ulimit options (name=soft[:hard])"),
    ]


@attrs.frozen
class ResourceFlags:
    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None
    oom_kill_disable: bool = False
    shm_size: int = 0
    ulimits: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ResourceFlags:
        """From click's parameters (absent keys mean unset); values checked like docker's."""
        if params.get("cpus") and (params.get("cpu_period") or params.get("cpu_quota")):
            raise OptionError("Conflicting options: --cpus and --cpu-period/--cpu-quota cannot "
                              "both be set")
        return cls(
            memory=_bytes(params.get("memory"), "memory"),
            memory_swap=_swap(params.get("memory_swap")),
            memory_reservation=_bytes(params.get("memory_reservation"), "memory-reservation"),
            nano_cpus=parse_cpus(params.get("cpus") or ""),
            cpu_shares=params.get("cpu_shares") or 0,
            cpu_period=params.get("cpu_period") or 0,
            cpu_quota=params.get("cpu_quota") or 0,
            cpuset_cpus=params.get("cpuset_cpus") or "",
            cpuset_mems=params.get("cpuset_mems") or "",
            pids_limit=params.get("pids_limit"),
            oom_kill_disable=bool(params.get("oom_kill_disable")),
            shm_size=_bytes(params.get("shm_size"), "shm-size"),
            ulimits=tuple(parse_ulimit(u) for u in params.get("ulimits") or ()),
        )

    def fields(self) -> dict[str, Any]:
        """The `HostConfig` / `UpdateConfig` fields the flags set (unset ones left out)."""
        out: dict[str, Any] = {}
        for key, value in (("Memory", self.memory), ("MemorySwap", self.memory_swap),
                           ("MemoryReservation", self.memory_reservation),
                           ("NanoCpus", self.nano_cpus), ("CpuShares", self.cpu_shares),
                           ("CpuPeriod", self.cpu_period), ("CpuQuota", self.cpu_quota),
                           ("CpusetCpus", self.cpuset_cpus), ("CpusetMems", self.cpuset_mems),
                           ("ShmSize", self.shm_size)):
            if value:
                out[key] = value
        if self.pids_limit is not None:
            out["PidsLimit"] = self.pids_limit
        if self.oom_kill_disable:
            out["OomKillDisable"] = True
        if self.ulimits:
            out["Ulimits"] = list(self.ulimits)
        return out


def _bytes(text: str | None, flag: str) -> int:
    if not text:
        return 0
    try:
        return ram_in_bytes(text)
    except ValueError:
        raise OptionError(f"invalid argument \"{text}\" for \"--{flag}\" flag: invalid size: "
                          f"'{text}'") from None


def _swap(text: str | None) -> int:
    return -1 if text == "-1" else _bytes(text, "memory-swap")


def parse_cpus(text: str) -> int:
    """`--cpus 1.5` as NanoCpus; like docker, a value finer than 1e-9 is refused."""
    if not text:
        return 0
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise OptionError(f"invalid argument \"{text}\" for \"--cpus\" flag: failed to parse "
                          f"{text} as a rational number") from None
    nano = value * 1_000_000_000
    if nano.denominator != 1:
        raise OptionError(f"invalid argument \"{text}\" for \"--cpus\" flag: value is too precise")
    return int(nano)


def parse_ulimit(text: str) -> dict[str, Any]:
    """`nofile=1024:2048` (hard defaults to soft; -1 is unlimited), as docker's --ulimit."""
    name, sep, values = text.partition("=")
    if not sep or not name:
        raise OptionError(f"invalid argument \"{text}\" for \"--ulimit\" flag: invalid ulimit "
                          f"argument: {text}")
    soft_text, _, hard_text = values.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if hard_text else soft
    except ValueError:
        raise OptionError(f"invalid argument \"{text}\" for \"--ulimit\" flag: invalid ulimit "
                          f"argument: {text}") from None
    if soft > hard and hard != -1:
        raise OptionError(f"invalid argument \"{text}\" for \"--ulimit\" flag: ulimit soft "
                          f"limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Soft": soft, "Hard": hard}
