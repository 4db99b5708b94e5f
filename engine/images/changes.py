"""`docker import --change` / `docker commit --change`: Dockerfile instructions on a config.

Docker runs the changes through its Dockerfile parser, so users write them exactly as
in a Dockerfile: `CMD ["sh"]` or `CMD echo hi`, `ENV A=1 B="two words"`, `EXPOSE 80/tcp`.
Only instructions that change the image config are allowed; the others are refused
with Docker's message. Variables (`$VAR`, `${VAR:-default}`) in ENV, LABEL, USER,
WORKDIR, VOLUME, EXPOSE and STOPSIGNAL expand from the config's environment as it
stands before the instruction, as the Dockerfile builder does.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
import signal
from collections.abc import Callable, Iterable

import attrs

from engine.errors import InvalidParameter
from engine.images.model import Healthcheck, ImageConfig

DEFAULT_SHELL = ["/bin/sh", "-c"]

_NAME_CHARS = re.compile(r"[A-Za-z0-9_]")


# lexing -------------------------------------------------------------------------


def logical_lines(changes: Iterable[str]) -> list[str]:
    """Join the changes as Docker does (newline-separated), honour `\\` continuations, drop
    blank lines and comments."""
    lines: list[str] = []
    pending = ""
    for physical in "\n".join(changes).split("\n"):
        stripped = physical.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comments inside a continued instruction are skipped, as Docker does
        if physical.rstrip().endswith("\\"):
            pending += physical.rstrip()[:-1]
            continue
        pending += physical
        if pending.strip():
            lines.append(pending.strip())
        pending = ""
    if pending.strip():
        lines.append(pending.strip())
    return lines


def split_raw_words(text: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes in the words (for key=value)."""
    words: list[str] = []
    word = ""
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            word += ch
            if ch == "\\" and quote == '"' and i + 1 < len(text):
                word += text[i + 1]
                i += 1
            elif ch == quote:
                quote = ""
        elif ch.isspace():
            if word:
                words.append(word)
                word = ""
        else:
            word += ch
            if ch in "'\"":
                quote = ch
            elif ch == "\\" and i + 1 < len(text):
                word += text[i + 1]
                i += 1
        i += 1
    if word:
        words.append(word)
    return words


def _env_map(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


@attrs.define
class _Lexer:
    """Quote removal and variable expansion of one Dockerfile word (Docker's shell lexer)."""

    text: str
    env: dict[str, str]
    pos: int = 0

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        self.pos += 1
        return ch

    def words(self) -> list[str]:
        """All words; whitespace outside quotes separates them."""
        out: list[str] = []
        word: list[str] = []
        seen = False
        while self.pos < len(self.text):
            ch = self._peek()
            if ch.isspace():
                self.pos += 1
                if seen:
                    out.append("".join(word))
                    word, seen = [], False
                continue
            seen = True
            word.append(self._piece())
        if seen:
            out.append("".join(word))
        return out

    def word(self) -> str:
        """The whole text as one word (inner whitespace kept)."""
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self._peek()
            if ch.isspace():
                out.append(self._next())
            else:
                out.append(self._piece())
        return "".join(out)

    def _piece(self) -> str:
        ch = self._next()
        if ch == "'":
            end = self.text.find("'", self.pos)
            if end < 0:
                raise InvalidParameter(
                    "unexpected end of statement while looking for matching single-quote"
                )
            piece = self.text[self.pos : end]
            self.pos = end + 1
            return piece
        if ch == '"':
            return self._double_quoted()
        if ch == "$":
            return self._dollar()
        if ch == "\\":
            return self._next() if self.pos < len(self.text) else "\\"
        return ch

    def _double_quoted(self) -> str:
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise InvalidParameter(
                    "unexpected end of statement while looking for matching double-quote"
                )
            ch = self._next()
            if ch == '"':
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
            elif ch == "\\" and self._peek() in ('"', "$", "\\") and self._peek():
                out.append(self._next())
            else:
                out.append(ch)

    def _name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and _NAME_CHARS.match(self.text[self.pos]):
            self.pos += 1
        return self.text[start : self.pos]

    def _dollar(self) -> str:
        if self._peek() == "{":
            self.pos += 1
            name = self._name()
            if not name:
                raise InvalidParameter(f"bad substitution in {self.text!r}")
            if self._peek() == "}":
                self.pos += 1
                return self.env.get(name, "")
            colon = False
            if self._peek() == ":":
                colon = True
                self.pos += 1
            op = self._next()
            if op not in ("-", "+", "?"):
                raise InvalidParameter(f"unsupported modifier ({op}) in substitution")
            word = self._until_brace()
            value = self.env.get(name)
            is_set = value is not None and (value != "" or not colon)
            if op == "-":
                return value if is_set and value is not None else word
            if op == "+":
                return word if is_set else ""
            if not is_set:
                raise InvalidParameter(f"{name}: {word or 'is not allowed to be unset'}")
            return value or ""
        name = self._name()
        if not name:
            return "$"
        return self.env.get(name, "")

    def _until_brace(self) -> str:
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise InvalidParameter(f"missing '}}' in {self.text!r}")
            ch = self._peek()
            if ch == "}":
                self.pos += 1
                return "".join(out)
            out.append(self._piece())


def expand_word(text: str, env: list[str]) -> str:
    return _Lexer(text, _env_map(env)).word()


def expand_words(text: str, env: list[str]) -> list[str]:
    return _Lexer(text, _env_map(env)).words()


# instructions -------------------------------------------------------------------


def _maybe_json_list(rest: str) -> list[str] | None:
    """The exec (JSON array of strings) form, or None for the shell form."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _key_values(instr: str, rest: str, env: list[str]) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: `k=v k2="v 2"`, or the legacy `k value with spaces`."""
    words = split_raw_words(rest)
    if not words:
        raise InvalidParameter(f"{instr} requires at least one argument")
    pairs: list[tuple[str, str]] = []
    if "=" not in words[0]:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise InvalidParameter(f"{instr} must have two arguments")
        pairs.append((expand_word(parts[0], env), expand_word(parts[1], env)))
    else:
        for w in words:
            if "=" not in w:
                raise InvalidParameter(
                    f'Syntax error - can\'t find = in "{w}". Must be of the form: name=value'
                )
            key, _, value = w.partition("=")
            pairs.append((expand_word(key, env), expand_word(value, env)))
    for key, _ in pairs:
        if not key:
            raise InvalidParameter(f"{instr} names can not be blank")
    return pairs


def _set_env(config: ImageConfig, key: str, value: str) -> None:
    entry = f"{key}={value}"
    for i, item in enumerate(config.env):
        if item.partition("=")[0] == key:
            config.env[i] = entry
            return
    config.env.append(entry)


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
    m = re.fullmatch(r"RTM(IN|AX)(?:([+-])(\d+))?", name)
    if m:
        return
    raise InvalidParameter(f"Invalid signal: {text}")


_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(text: str) -> int:
    """A Go duration (`30s`, `1m30s`, `500ms`, `0`) → nanoseconds."""
    if text == "0":
        return 0
    pos = 0
    total = 0.0
    if not text:
        raise InvalidParameter('time: invalid duration ""')
    while pos < len(text):
        m = _DURATION_RE.match(text, pos)
        if not m:
            raise InvalidParameter(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    return int(total)


_MIN_HEALTH_DURATION = 1_000_000  # 1 ms, Docker's floor


def _healthcheck(rest: str) -> Healthcheck:
    words = rest.split()
    if not words:
        raise InvalidParameter("HEALTHCHECK requires an argument")
    if words[0].upper() == "NONE":
        if len(words) > 1:
            raise InvalidParameter('HEALTHCHECK NONE takes no arguments')
        return Healthcheck(test=("NONE",))
    values = {"interval": 0, "timeout": 0, "start-period": 0, "start-interval": 0}
    retries = 0
    remaining = rest.strip()
    while remaining.startswith("--"):
        flag, _, remaining = remaining.partition(" ")
        remaining = remaining.strip()
        name, eq, value = flag[2:].partition("=")
        if not eq:
            raise InvalidParameter(f"missing a value on flag: {flag}")
        if name == "retries":
            try:
                retries = int(value)
            except ValueError:
                raise InvalidParameter(f"invalid retries value: {value}") from None
            if retries < 0:
                raise InvalidParameter("--retries cannot be negative")
        elif name in values:
            ns = parse_duration(value)
            if 0 < ns < _MIN_HEALTH_DURATION:
                raise InvalidParameter(f"{name.capitalize()} \"{value}\" cannot be less than 1ms")
            values[name] = ns
        else:
            raise InvalidParameter(f"Unknown flag: {name}")
    word, _, cmd_rest = remaining.partition(" ")
    if word.upper() != "CMD":
        raise InvalidParameter(f'Unknown type "{word.upper()}" in HEALTHCHECK (try CMD)')
    cmd_rest = cmd_rest.strip()
    exec_form = _maybe_json_list(cmd_rest)
    if exec_form is not None:
        test: tuple[str, ...] = ("CMD", *exec_form)
    elif cmd_rest:
        test = ("CMD-SHELL", cmd_rest)
    else:
        raise InvalidParameter("Missing command after HEALTHCHECK CMD")
    return Healthcheck(
        test=test,
        interval=values["interval"],
        timeout=values["timeout"],
        start_period=values["start-period"],
        start_interval=values["start-interval"],
        retries=retries,
    )


@attrs.define
class _State:
    config: ImageConfig
    cmd_set: bool = False


def _command(state: _State, instr: str, rest: str) -> list[str]:
    exec_form = _maybe_json_list(rest)
    if exec_form is not None:
        return exec_form
    if not rest:
        raise InvalidParameter(f"{instr} requires at least one argument")
    shell = state.config.shell if state.config.shell else DEFAULT_SHELL
    return [*shell, rest]


def _do_cmd(state: _State, rest: str) -> None:
    state.config.cmd = _command(state, "CMD", rest)
    state.cmd_set = True


def _do_entrypoint(state: _State, rest: str) -> None:
    state.config.entrypoint = _command(state, "ENTRYPOINT", rest)
    if not state.cmd_set:
        # as in a Dockerfile: a new ENTRYPOINT drops an inherited CMD unless CMD was set too
        state.config.cmd = None


def _do_env(state: _State, rest: str) -> None:
    for key, value in _key_values("ENV", rest, state.config.env):
        _set_env(state.config, key, value)


def _do_label(state: _State, rest: str) -> None:
    for key, value in _key_values("LABEL", rest, state.config.env):
        state.config.labels[key] = value


def _do_expose(state: _State, rest: str) -> None:
    specs = expand_words(rest, state.config.env)
    if not specs:
        raise InvalidParameter("EXPOSE requires at least one argument")
    for spec in specs:
        for port in parse_exposed_port(spec):
            if port not in state.config.exposed_ports:
                state.config.exposed_ports.append(port)


def _do_user(state: _State, rest: str) -> None:
    user = expand_word(rest, state.config.env).strip()
    if not user:
        raise InvalidParameter("USER requires exactly one argument")
    state.config.user = user


def _do_workdir(state: _State, rest: str) -> None:
    requested = expand_word(rest, state.config.env).strip()
    if not requested:
        raise InvalidParameter("WORKDIR requires exactly one argument")
    if not requested.startswith("/"):
        requested = posixpath.normpath(posixpath.join("/", state.config.working_dir or "/",
                                                      requested))
    state.config.working_dir = requested


def _do_volume(state: _State, rest: str) -> None:
    exec_form = _maybe_json_list(rest)
    raw = exec_form if exec_form is not None else split_raw_words(rest)
    if not raw:
        raise InvalidParameter("VOLUME requires at least one argument")
    for item in raw:
        path = expand_word(item, state.config.env).strip()
        if not path:
            raise InvalidParameter("VOLUME specified can not be an empty string")
        if path not in state.config.volumes:
            state.config.volumes.append(path)


def _do_stopsignal(state: _State, rest: str) -> None:
    sig = expand_word(rest, state.config.env).strip()
    if not sig:
        raise InvalidParameter("STOPSIGNAL requires exactly one argument")
    validate_signal(sig)
    state.config.stop_signal = sig


def _do_onbuild(state: _State, rest: str) -> None:
    trigger = rest.split(None, 1)[0].upper() if rest.strip() else ""
    if not trigger:
        raise InvalidParameter("ONBUILD requires at least one argument")
    if trigger == "ONBUILD":
        raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("FROM", "MAINTAINER"):
        raise InvalidParameter(f"{trigger} isn't allowed as an ONBUILD trigger")
    state.config.on_build.append(rest.strip())


def _do_healthcheck(state: _State, rest: str) -> None:
    state.config.healthcheck = _healthcheck(rest)


_DISPATCH: dict[str, Callable[[_State, str], None]] = {
    "cmd": _do_cmd,
    "entrypoint": _do_entrypoint,
    "env": _do_env,
    "expose": _do_expose,
    "healthcheck": _do_healthcheck,
    "label": _do_label,
    "onbuild": _do_onbuild,
    "stopsignal": _do_stopsignal,
    "user": _do_user,
    "volume": _do_volume,
    "workdir": _do_workdir,
}


def parse_changes(changes: Iterable[str]) -> list[tuple[str, str]]:
    """Validate the instructions and split them: `[(instruction lowercased, rest), …]`.

    Every instruction is checked before any is applied, as Docker does.
    """
    out = []
    for line in logical_lines(changes):
        parts = line.split(None, 1)
        instr = parts[0].lower()
        if instr not in _DISPATCH:
            raise InvalidParameter(f"{instr} is not a valid change command")
        out.append((instr, parts[1].strip() if len(parts) > 1 else ""))
    return out


def apply_changes(config: ImageConfig, changes: Iterable[str]) -> ImageConfig:
    """A copy of `config` with the Dockerfile instructions in `changes` applied."""
    parsed = parse_changes(changes)
    state = _State(copy.deepcopy(config))  # the caller's config is left as it was
    for instr, rest in parsed:
        _DISPATCH[instr](state, rest)
    return state.config


__all__ = [
    "apply_changes",
    "expand_word",
    "expand_words",
    "parse_changes",
    "parse_duration",
    "parse_exposed_port",
    "validate_signal",
]
