"""Pass 2: one `_Node` to its typed record, each instruction's flags and arguments checked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypedDict

import attrs

from engine.dockerfile.errors import _go_quote, _Refused, _suggest
from engine.dockerfile.flags import _FlagValue, _opt_str, _opt_strs, _parse_flags
from engine.dockerfile.heredocs import parse_heredoc_word
from engine.dockerfile.mounts import _parse_mount
from engine.dockerfile.nodes import _Node
from engine.dockerfile.records import (
    Add,
    Arg,
    Cmd,
    Command,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Heredoc,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from engine.durations import MILLISECOND, DurationError, parse_duration

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
_ONBUILD_PREFIX = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)


def _exactly_one(node: _Node, keyword: str) -> str:
    if len(node.args) != 1:
        raise _Refused(f"{keyword} requires exactly one argument")
    return node.args[0]


def _at_least_one(node: _Node, keyword: str) -> None:
    if not node.args:
        raise _Refused(f"{keyword} requires at least one argument")


def _command(node: _Node) -> Command:
    return node.args if node.json else " ".join(node.args)


def _interval(flags: Mapping[str, _FlagValue], name: str) -> int:
    value = _opt_str(flags, name)
    if not value:
        return 0
    try:
        nanos = parse_duration(value)
    except DurationError as err:
        raise _Refused(err.message) from None
    if nanos != 0 and nanos < MILLISECOND:
        raise _Refused(f"Interval {_go_quote(name)} cannot be less than 1ms")
    return nanos


_HEALTH_FLAGS = {n: "string" for n in ("interval", "timeout", "start-period", "start-interval", "retries")}


def _sources_and_dest(node: _Node, keyword: str) -> tuple[tuple[str, ...], str, tuple[Heredoc, ...]]:
    if len(node.args) < 2:
        raise _Refused(
            f"{keyword} requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    *sources, dest = node.args
    if parse_heredoc_word(dest) is not None:
        raise _Refused(f"{keyword} cannot accept a heredoc as a destination")
    bodies = {doc.name: doc.content for doc in node.heredocs}
    paths: list[str] = []
    inline: list[Heredoc] = []
    for source in sources:
        doc = parse_heredoc_word(source)
        if doc is None:
            paths.append(source)
        else:
            inline.append(attrs.evolve(doc, content=bodies.get(doc.name, "")))
    return tuple(paths), dest, tuple(inline)


def _kv_pairs(node: _Node, keyword: str) -> tuple[tuple[str, str], ...]:
    if not node.args:
        raise _Refused(f"{keyword} requires at least one argument")
    triples = node.args
    pairs = []
    for i in range(0, len(triples), 3):
        if not triples[i]:
            raise _Refused(f"{keyword} names can not be blank")
        pairs.append((triples[i], triples[i + 1]))
    return tuple(pairs)


def _instruction(node: _Node) -> Instruction:
    """Pass 2 for one logical line: the typed record, or _Refused."""
    kw = node.keyword.upper()
    base = _Where(line=node.line, end_line=node.end_line, original=node.original.strip())
    parse = _PARSERS.get(kw)
    if parse is None:
        raise _Refused(
            f"unknown instruction: {node.keyword}" + _suggest(node.keyword, _KEYWORDS, case_sensitive=False)
        )
    return parse(node, base)


class _Where(TypedDict):
    """Where an instruction is and how it was written: the Instruction base fields."""

    line: int
    end_line: int
    original: str


def _from(node: _Node, base: _Where) -> From:
    args = node.args
    name = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise _Refused(
                f"invalid name for build stage: {_go_quote(args[2])}, "
                "name can't start with a number or contain symbols"
            )
    elif len(args) != 1:
        raise _Refused("FROM requires either one or three arguments")
    flags = _parse_flags(node.flags, {"platform": "string"})
    return From(base=args[0], stage_name=name, platform=_opt_str(flags, "platform") or None, **base)


def _run(node: _Node, base: _Where) -> Run:
    flags = _parse_flags(node.flags, {"mount": "strings", "network": "string", "security": "string"})
    network = _opt_str(flags, "network")
    if network is not None and network not in ("default", "none", "host"):
        raise _Refused(f"invalid network mode {_go_quote(network)}")
    security = _opt_str(flags, "security")
    if security is not None and security not in ("sandbox", "insecure"):
        raise _Refused(f"security {_go_quote(security)} is not valid")
    mounts = tuple(_parse_mount(spec) for spec in _opt_strs(flags, "mount"))
    used = tuple(f.partition("=")[0][2:] for f in node.flags if f != "--")
    return Run(
        command=_command(node),
        heredocs=node.heredocs,
        mounts=mounts,
        network=network,
        security=security,
        flags_used=tuple(dict.fromkeys(used)),
        **base,
    )


def _cmd(node: _Node, base: _Where) -> Cmd:
    _parse_flags(node.flags, {})
    return Cmd(command=_command(node), **base)


def _entrypoint(node: _Node, base: _Where) -> Entrypoint:
    _parse_flags(node.flags, {})
    return Entrypoint(command=_command(node), **base)


def _env(node: _Node, base: _Where) -> Env:
    _parse_flags(node.flags, {})
    pairs = _kv_pairs(node, "ENV")
    return Env(pairs=pairs, legacy=node.args[2] == "", **base)


def _label(node: _Node, base: _Where) -> Label:
    _parse_flags(node.flags, {})
    return Label(pairs=_kv_pairs(node, "LABEL"), **base)


def _arg(node: _Node, base: _Where) -> Arg:
    _at_least_one(node, "ARG")
    pairs: list[tuple[str, str | None]] = []
    for word in node.args:
        if "=" in word:
            key, _, value = word.partition("=")
            if not key:
                raise _Refused("ARG names can not be blank")
            pairs.append((key, value))
        else:
            pairs.append((word, None))
    return Arg(pairs=tuple(pairs), **base)


def _expose(node: _Node, base: _Where) -> Expose:
    _at_least_one(node, "EXPOSE")
    _parse_flags(node.flags, {})
    return Expose(ports=tuple(sorted(node.args)), in_order=node.args, **base)


def _workdir(node: _Node, base: _Where) -> Workdir:
    path = _exactly_one(node, "WORKDIR")
    _parse_flags(node.flags, {})
    return Workdir(path=path, **base)


def _user(node: _Node, base: _Where) -> User:
    user = _exactly_one(node, "USER")
    _parse_flags(node.flags, {})
    return User(user=user, **base)


def _volume(node: _Node, base: _Where) -> Volume:
    _at_least_one(node, "VOLUME")
    _parse_flags(node.flags, {})
    paths = tuple(p.strip() for p in node.args)
    if any(not p for p in paths):
        raise _Refused("VOLUME specified can not be an empty string")
    return Volume(paths=paths, **base)


def _copy(node: _Node, base: _Where) -> Copy:
    sources, dest, inline = _sources_and_dest(node, "COPY")
    spec = {"chown": "string", "from": "string", "chmod": "string", "link": "bool", "exclude": "strings"}
    flags = _parse_flags(node.flags, {**spec, "parents": "bool"})
    return Copy(
        sources=sources,
        dest=dest,
        inline=inline,
        from_=_opt_str(flags, "from") or None,
        chown=_opt_str(flags, "chown") or None,
        chmod=_opt_str(flags, "chmod") or None,
        link=flags.get("link") is True,
        parents=flags.get("parents") is True,
        excludes=_opt_strs(flags, "exclude"),
        **base,
    )


def _add(node: _Node, base: _Where) -> Add:
    sources, dest, inline = _sources_and_dest(node, "ADD")
    spec = {"chown": "string", "chmod": "string", "link": "bool", "keep-git-dir": "bool"}
    flags = _parse_flags(node.flags, {**spec, "checksum": "string", "unpack": "bool", "exclude": "strings"})
    keep_git = flags.get("keep-git-dir")
    unpack = flags.get("unpack")
    return Add(
        sources=sources,
        dest=dest,
        inline=inline,
        chown=_opt_str(flags, "chown") or None,
        chmod=_opt_str(flags, "chmod") or None,
        link=flags.get("link") is True,
        checksum=_opt_str(flags, "checksum") or None,
        keep_git_dir=keep_git if isinstance(keep_git, bool) else None,
        unpack=unpack if isinstance(unpack, bool) else None,
        excludes=_opt_strs(flags, "exclude"),
        **base,
    )


def _stopsignal(node: _Node, base: _Where) -> StopSignal:
    # Docker never checks STOPSIGNAL's flags
    return StopSignal(signal=_exactly_one(node, "STOPSIGNAL"), **base)


def _maintainer(node: _Node, base: _Where) -> Maintainer:
    name = _exactly_one(node, "MAINTAINER")
    _parse_flags(node.flags, {})
    return Maintainer(name=name, **base)


def _shell(node: _Node, base: _Where) -> Shell:
    _parse_flags(node.flags, {})
    if not node.args:
        raise _Refused("SHELL requires at least one argument")
    if not node.json:
        raise _Refused("SHELL requires the arguments to be in JSON form")
    return Shell(shell=node.args, **base)


def _healthcheck(node: _Node, base: _Where) -> Healthcheck:
    _at_least_one(node, "HEALTHCHECK")
    kind = node.args[0].upper()
    rest = node.args[1:]
    if kind == "NONE":
        # Docker never looks at the flags of HEALTHCHECK NONE
        if rest:
            raise _Refused("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(test=("NONE",), **base)
    flags = _parse_flags(node.flags, _HEALTH_FLAGS)
    if kind != "CMD":
        raise _Refused(f"Unknown type {_go_quote(kind)} in HEALTHCHECK (try CMD)")
    if not rest:
        raise _Refused("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *rest) if node.json else ("CMD-SHELL", " ".join(rest))
    retries = 0
    raw_retries = _opt_str(flags, "retries")
    if raw_retries:
        try:
            retries = int(raw_retries, 10)
        except ValueError:
            raise _Refused(f"strconv.ParseInt: parsing {_go_quote(raw_retries)}: invalid syntax") from None
        if retries < 0:
            raise _Refused(f"--retries cannot be negative ({retries})")
    return Healthcheck(
        test=test,
        interval=_interval(flags, "interval"),
        timeout=_interval(flags, "timeout"),
        start_period=_interval(flags, "start-period"),
        start_interval=_interval(flags, "start-interval"),
        retries=retries,
        **base,
    )


def _onbuild(node: _Node, base: _Where) -> Onbuild:
    child = node.child
    if child is None:
        raise _Refused("ONBUILD requires at least one argument")
    _parse_flags(node.flags, {})
    trigger_kw = child.keyword.upper()
    if trigger_kw == "ONBUILD":
        raise _Refused("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger_kw in ("FROM", "MAINTAINER"):
        raise _Refused(f"{trigger_kw} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX.sub("", node.original, count=1)
    for doc in node.heredocs:
        expression += "\n" + doc.content + doc.name
    trigger = _instruction(attrs.evolve(child, heredocs=node.heredocs, end_line=node.end_line))
    return Onbuild(expression=expression, trigger=trigger, **base)


_PARSERS = {
    "ADD": _add,
    "ARG": _arg,
    "CMD": _cmd,
    "COPY": _copy,
    "ENTRYPOINT": _entrypoint,
    "ENV": _env,
    "EXPOSE": _expose,
    "FROM": _from,
    "HEALTHCHECK": _healthcheck,
    "LABEL": _label,
    "MAINTAINER": _maintainer,
    "ONBUILD": _onbuild,
    "RUN": _run,
    "SHELL": _shell,
    "STOPSIGNAL": _stopsignal,
    "USER": _user,
    "VOLUME": _volume,
    "WORKDIR": _workdir,
}


_KEYWORDS = tuple(_PARSERS)
