"""Dockerfile metadata instructions applied to an image config: `docker commit --change`,
`docker import --change`, and the builder's CMD, LABEL, EXPOSE, … steps.

dockerd reads `--change` lines with its Dockerfile parser and runs them through the
builder's own dispatchers (BuildFromConfig), so they are written exactly as in a
Dockerfile: `CMD ["sh"]` or `CMD echo hi`, `ENV A=1 B="two words"`, `EXPOSE
8000-8002/udp`, `HEALTHCHECK --interval=5s CMD true`, continuation lines, comments, an
`# escape=` directive. The same here: `engine.dockerfile` parses them (its forms,
flags and errors) and `apply_instruction`, which the builder uses too, applies them.
Only the instructions dockerd allows in a change are taken (`CHANGE_INSTRUCTIONS`);
every line is checked before any is applied.

Variables (`$VAR`, `${VAR:-default}`) in ENV, LABEL, USER, WORKDIR, VOLUME, EXPOSE and
STOPSIGNAL expand (`engine.dockerfile.substitution`) with the values in scope before the
instruction: for a change, the config's environment.
"""

from __future__ import annotations

import copy
import posixpath
import re
import signal
from collections.abc import Iterable, Mapping

from engine.dockerfile import (
    DEFAULT_ESCAPE,
    Cmd,
    Command,
    DockerfileError,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Onbuild,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse_instructions,
)
from engine.dockerfile.substitution import expand, expand_words
from engine.errors import InvalidParameter
from engine.images.model import Healthcheck as ImageHealthcheck
from engine.images.model import ImageConfig

DEFAULT_SHELL = ("/bin/sh", "-c")

#: what dockerd's BuildFromConfig lets a change do (lower-case, as it names them)
CHANGE_INSTRUCTIONS = frozenset({"cmd", "entrypoint", "env", "expose", "healthcheck", "label",
                                 "onbuild", "stopsignal", "user", "volume", "workdir"})


# checks dockerd makes when it applies them ----------------------------------------------

_PORT_RE = re.compile(r"^(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?$")


def parse_exposed_port(spec: str) -> list[str]:
    """`80`, `80/udp`, `8000-8002/tcp` → `["80/tcp"]` …, validated as Docker does."""
    m = _PORT_RE.match(spec)
    if not m:
        raise InvalidParameter(f"Invalid containerPort: {spec}")
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else start
    proto = (m.group(3) or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidParameter(f"invalid proto: {proto}")
    if start > 65535 or end > 65535 or end < start:
        raise InvalidParameter(f"Invalid containerPort: {spec}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def validate_signal(text: str) -> None:
    """Docker's ParseSignal: a number, or a name with or without `SIG`."""
    if text.isdigit():
        if int(text) == 0:
            raise InvalidParameter(f"Invalid signal: {text}")
        return
    name = text.upper().removeprefix("SIG")
    if name in {s.name.removeprefix("SIG") for s in signal.Signals}:
        return
    if re.fullmatch(r"RTM(IN|AX)(?:([+-])(\d+))?", name):
        return
    raise InvalidParameter(f"Invalid signal: {text}")


# applying one instruction ---------------------------------------------------------------


def set_env(env: list[str], name: str, value: str) -> None:
    """`name=value` into a `K=V` list: in place of an earlier `name`, else at the end."""
    entry = f"{name}={value}"
    for i, item in enumerate(env):
        if item.partition("=")[0] == name:
            env[i] = entry
            return
    env.append(entry)


def env_values(env: Iterable[str]) -> dict[str, str]:
    """A `K=V` list as the mapping `$VAR` expands from."""
    return dict((key, value) for key, _, value in (item.partition("=") for item in env))


def working_dir(current: str, requested: str) -> str:
    """WORKDIR's rule: a relative path is taken from the current directory (or `/`)."""
    if not requested.startswith("/"):
        requested = posixpath.join("/", current or "/", requested)
    return posixpath.normpath(requested)


def command_line(config: ImageConfig, command: Command) -> list[str]:
    """CMD/ENTRYPOINT's argv: the exec form as written, the shell form under SHELL."""
    if isinstance(command, tuple):
        return list(command)
    return [*(config.shell or DEFAULT_SHELL), command]


def apply_instruction(config: ImageConfig, ins: Instruction, values: Mapping[str, str], *,
                      escape: str = DEFAULT_ESCAPE, cmd_set: bool = False) -> None:
    """One metadata instruction on `config` (changed in place), as dockerd's dispatchers
    apply it; `values` is what `$VAR` expands to. `cmd_set`: a CMD came earlier in
    this stage (or change), so an ENTRYPOINT keeps CMD; otherwise it clears it.

    WORKDIR only sets the directory here (the builder also creates it).
    """
    def word(text: str) -> str:
        return expand(text, values, escape=escape)

    if isinstance(ins, Env):
        for key, value in [(word(k), word(v)) for k, v in ins.pairs]:
            set_env(config.env, key, value)
    elif isinstance(ins, Label):
        for key, value in ins.pairs:
            config.labels[word(key)] = word(value)
    elif isinstance(ins, Cmd):
        config.cmd = command_line(config, ins.command)
    elif isinstance(ins, Entrypoint):
        config.entrypoint = command_line(config, ins.command)
        if not cmd_set:
            config.cmd = None
    elif isinstance(ins, Expose):
        for raw in ins.in_order or ins.ports:
            for spec in expand_words(raw, values, escape=escape):
                for port in parse_exposed_port(spec):
                    if port not in config.exposed_ports:
                        config.exposed_ports.append(port)
    elif isinstance(ins, User):
        config.user = word(ins.user)
    elif isinstance(ins, Workdir):
        config.working_dir = working_dir(config.working_dir, word(ins.path))
    elif isinstance(ins, Volume):
        for raw in ins.paths:
            path = word(raw)
            if not path:
                raise InvalidParameter("VOLUME specified can not be an empty string")
            if path not in config.volumes:
                config.volumes.append(path)
    elif isinstance(ins, StopSignal):
        name = word(ins.signal)
        validate_signal(name)
        config.stop_signal = name
    elif isinstance(ins, Healthcheck):
        config.healthcheck = ImageHealthcheck(tuple(ins.test), ins.interval, ins.timeout,
                                              ins.start_period, ins.start_interval, ins.retries)
    elif isinstance(ins, Shell):
        config.shell = list(ins.shell)
    elif isinstance(ins, Onbuild):
        config.on_build.append(ins.expression)
    else:
        raise InvalidParameter(f"{ins.keyword} does not change an image config")


# --change -------------------------------------------------------------------------------


def _accept_change(keyword: str) -> None:
    if keyword not in CHANGE_INSTRUCTIONS:
        raise InvalidParameter(f"{keyword} is not a valid change command")


def parse_changes(changes: Iterable[str]) -> tuple[str, tuple[Instruction, ...]]:
    """The escape character and the instructions of `changes` (joined by newlines, as
    Docker joins them), all checked; errors in Docker's words, without a line number."""
    try:
        directives, instructions = parse_instructions("\n".join(changes), accept=_accept_change)
    except DockerfileError as err:
        raise InvalidParameter(err.detail) from None
    for ins in instructions:
        if isinstance(ins, (Cmd, Entrypoint)) and ins.command == "":
            raise InvalidParameter(f"{ins.keyword} requires at least one argument")
    return directives.escape, instructions


def apply_changes(config: ImageConfig, changes: Iterable[str]) -> ImageConfig:
    """A copy of `config` with the Dockerfile instructions in `changes` applied."""
    escape, instructions = parse_changes(changes)
    result = copy.deepcopy(config)  # the caller's config is left as it was
    cmd_set = False
    for ins in instructions:
        apply_instruction(result, ins, env_values(result.env), escape=escape, cmd_set=cmd_set)
        cmd_set = cmd_set or isinstance(ins, Cmd)
    return result


__all__ = [
    "CHANGE_INSTRUCTIONS",
    "DEFAULT_SHELL",
    "apply_changes",
    "apply_instruction",
    "command_line",
    "env_values",
    "parse_changes",
    "parse_exposed_port",
    "set_env",
    "validate_signal",
    "working_dir",
]
