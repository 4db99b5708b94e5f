"""The resource flags of `moor run/create/update`: memory, CPU, pids, ulimits, shm —
parsed as the docker CLI parses them and written into `HostConfig` (or the body of
`POST /containers/{id}/update`, which has the same field names). The limits' flags come
from their declarations in `engine.limits`."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import attrs
import click

from engine.cli.options import OptionError
from engine.limits import LIMIT_BY_NAME, LIMITS, Limit, Resources, Unit
from engine.units import ram_in_bytes


def _limit_option(limit: Limit) -> Any:
    names = [name for name in (limit.short, limit.flag) if name]
    if limit.unit is Unit.SWITCH:
        return click.option(*names, is_flag=True, help=limit.help)
    if limit.unit is Unit.COUNT:
        return click.option(*names, type=int, default=limit.default, metavar=limit.unit.metavar,
                            help=limit.help)
    return click.option(*names, default="", metavar=limit.unit.metavar, help=limit.help)


def click_options(for_update: bool = False) -> list[Any]:
    """The flags as click decorators: the limits (`engine.limits`), then --shm-size and
    --ulimit; `update` has only the limits it may change (no --oom-kill-disable, as in
    Docker, whose update cannot change those three either)."""
    limits = sorted((limit for limit in LIMITS if limit.updatable or not for_update),
                    key=lambda limit: (not limit.updatable, limit.flag))
    options = [_limit_option(limit) for limit in limits]
    if for_update:
        return options
    return [
        *options,
        click.option("--shm-size", default="", metavar="BYTES", help="Size of /dev/shm"),
        click.option("--ulimit", "ulimits", multiple=True, metavar="ULIMIT",
                     help="Ulimit options (name=soft[:hard])"),
    ]


@attrs.frozen
class ResourceFlags:
    """The limits, and the two settings moor's resource flags carry besides them."""

    limits: Resources = attrs.field(factory=Resources)
    shm_size: int = 0
    ulimits: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ResourceFlags:
        """From click's parameters (absent keys mean unset); values checked like docker's."""
        if params.get("cpus") and (params.get("cpu_period") or params.get("cpu_quota")):
            raise OptionError("Conflicting options: --cpus and --cpu-period/--cpu-quota cannot "
                              "both be set")
        return cls(
            limits=Resources(**{limit.name: _read(limit, params.get(limit.param))
                                for limit in LIMITS}),
            shm_size=_bytes(params.get("shm_size"), "shm-size"),
            ulimits=tuple(parse_ulimit(u) for u in params.get("ulimits") or ()),
        )

    def fields(self) -> dict[str, Any]:
        """The `HostConfig` / `UpdateConfig` fields the flags set (unset ones left out)."""
        out: dict[str, Any] = {LIMIT_BY_NAME[name].key: value
                               for name, value in self.limits.non_defaults().items()}
        if self.shm_size:
            out["ShmSize"] = self.shm_size
        if self.ulimits:
            out["Ulimits"] = list(self.ulimits)
        return out


def _read(limit: Limit, value: Any) -> Any:
    """A limit's flag value as its field holds it (the flag's default when not given)."""
    if limit.unit is Unit.SWITCH:
        return bool(value)
    if limit.unit is Unit.COUNT:
        return limit.default if value is None else value
    text = value or ""
    if limit.unit is Unit.CPUS:
        return parse_cpus(text)
    if limit.unit is Unit.SWAP:
        return _swap(text)
    if limit.unit is Unit.BYTES:
        return _bytes(text, limit.flag.lstrip("-"))
    return text


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
