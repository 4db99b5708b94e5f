"""Dockerfile parsing: bytes in, typed instruction records out, no I/O.

Two passes, as Docker's parser has them. The first joins physical lines into
logical ones: parser directives (`# escape=`, `# syntax=`, `# check=`) are read
from the leading comment block only; an escape character (`\\`, or `` ` ``) at the
end of a line continues it; comment lines and blank lines inside a continuation are
skipped (a blank one earns a warning, as in Docker); continuation lines keep their
leading blanks; heredoc bodies (`<<EOF`, `<<-EOF`, `<<"EOF"`, several per line) are
read after the line that opens them, for RUN, COPY and ADD. The second pass turns
each logical line into a record, checks flags and argument counts, and groups the
records into stages; ARGs before the first FROM are kept apart.

Arguments are kept as Docker keeps them before expansion: ENV, LABEL and ARG values
and COPY/ADD paths are raw words (quotes and escapes still in), to be given to
`engine.build.substitution.expand` with the values in scope at build time. RUN, CMD
and ENTRYPOINT are a string (shell form) or a tuple (exec form, JSON); text that
looks like JSON but does not parse is shell form, as in Docker.

Errors are `DockerfileError`s carrying the line, worded as Docker words them and
prefixed `dockerfile parse error on line N:` (Docker's prefix for instruction errors;
moorage puts it on line-joining errors too, so every message names its line).
Differences from Docker: an ONBUILD trigger is parsed when the ONBUILD is, so a bad
trigger fails this build rather than the child's; stage names are not checked for
duplicates (the builder decides).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar, TypedDict

import attrs

from engine.errors import InvalidParameter

DEFAULT_ESCAPE = "\\"
_BOM = "\ufeff"
# the ASCII blanks Docker splits instruction words on
_SPLIT_WORDS = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_HEREDOC = re.compile(r"^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
_ONBUILD_PREFIX = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)
_NS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000}
_NS |= {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


class DockerfileError(InvalidParameter):
    """A Dockerfile that does not parse; `line` is 1-based (0: the file as a whole)."""

    def __init__(self, detail: str, line: int, end_line: int | None = None) -> None:
        message = f"dockerfile parse error on line {line}: {detail}" if line else detail
        super().__init__(message)
        self.detail = detail
        self.line = line
        self.end_line = end_line if end_line is not None else line


class _Refused(Exception):
    """An instruction-level complaint; the caller knows the lines and raises DockerfileError."""


# ---------------------------------------------------------------------------------
# records


@attrs.frozen
class Directives:
    """The parser directives at the top of the file."""

    escape: str = DEFAULT_ESCAPE
    syntax: str | None = None
    check: str | None = None


@attrs.frozen
class Heredoc:
    """One here-document: `content` is every line up to the terminator, newlines kept.

    `expand` is False when the opening word was quoted (`<<"EOF"`, `<<'EOF'`): no
    variable expansion then. `chomp` (`<<-EOF`) strips leading tabs (see `text`).
    `fd` is the descriptor number written before `<<` (`3<<EOF`), None if none.
    """

    name: str
    content: str
    expand: bool = True
    chomp: bool = False
    fd: int | None = None

    @property
    def text(self) -> str:
        """The content as the file or script gets it (leading tabs gone under `<<-`)."""
        return re.sub(r"(?m)^\t+", "", self.content) if self.chomp else self.content


@attrs.frozen(kw_only=True)
class Instruction:
    """What every instruction has: where it is and how it was written.

    `original` is the logical line, continuations joined and trimmed, which is what
    the classic builder prints after `Step N/M :`. Heredoc bodies are not in it.
    """

    keyword: ClassVar[str] = ""
    line: int
    end_line: int
    original: str


Command = str | tuple[str, ...]  # shell form, or exec form (JSON array)


@attrs.frozen(kw_only=True)
class From(Instruction):
    keyword: ClassVar[str] = "FROM"
    base: str
    stage_name: str | None = None  # lower-cased, as Docker matches names case-insensitively
    platform: str | None = None


@attrs.frozen(kw_only=True)
class RunMount:
    """One `RUN --mount=`: its type and fields, values unexpanded."""

    type: str = "bind"
    target: str | None = None
    source: str | None = None
    from_: str | None = None
    readonly: bool | None = None  # None: the type's default (bind, secret, ssh: read-only)
    options: Mapping[str, str] = attrs.field(factory=dict)  # id, sharing, mode, uid, size...
    raw: str = ""


@attrs.frozen(kw_only=True)
class Run(Instruction):
    keyword: ClassVar[str] = "RUN"
    command: Command
    heredocs: tuple[Heredoc, ...] = ()
    mounts: tuple[RunMount, ...] = ()
    network: str | None = None  # default, none or host
    security: str | None = None  # sandbox or insecure
    flags_used: tuple[str, ...] = ()  # the classic builder refuses any: it names the first


@attrs.frozen(kw_only=True)
class Cmd(Instruction):
    keyword: ClassVar[str] = "CMD"
    command: Command


@attrs.frozen(kw_only=True)
class Entrypoint(Instruction):
    keyword: ClassVar[str] = "ENTRYPOINT"
    command: Command


@attrs.frozen(kw_only=True)
class Env(Instruction):
    keyword: ClassVar[str] = "ENV"
    pairs: tuple[tuple[str, str], ...]
    legacy: bool = False  # `ENV key value with spaces` rather than `ENV key=value`


@attrs.frozen(kw_only=True)
class Arg(Instruction):
    keyword: ClassVar[str] = "ARG"
    pairs: tuple[tuple[str, str | None], ...]  # name, default (None: no default)


@attrs.frozen(kw_only=True)
class Label(Instruction):
    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[tuple[str, str], ...]


@attrs.frozen(kw_only=True)
class Expose(Instruction):
    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]  # sorted, as Docker sorts them before expansion


@attrs.frozen(kw_only=True)
class Workdir(Instruction):
    keyword: ClassVar[str] = "WORKDIR"
    path: str


@attrs.frozen(kw_only=True)
class User(Instruction):
    keyword: ClassVar[str] = "USER"
    user: str


@attrs.frozen(kw_only=True)
class Volume(Instruction):
    keyword: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Copy(Instruction):
    """COPY: `sources` are context (or `from_` stage/image) paths, `inline` heredoc files."""

    keyword: ClassVar[str] = "COPY"
    sources: tuple[str, ...]
    dest: str
    inline: tuple[Heredoc, ...] = ()
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    excludes: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Add(Instruction):
    keyword: ClassVar[str] = "ADD"
    sources: tuple[str, ...]
    dest: str
    inline: tuple[Heredoc, ...] = ()
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    checksum: str | None = None
    keep_git_dir: bool | None = None
    unpack: bool | None = None
    excludes: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class StopSignal(Instruction):
    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str


@attrs.frozen(kw_only=True)
class Healthcheck(Instruction):
    """`test` as the image config has it: ("NONE",), ("CMD", *argv) or ("CMD-SHELL", cmd).

    Durations are nanoseconds, 0 meaning "the default"; retries 0 likewise.
    """

    keyword: ClassVar[str] = "HEALTHCHECK"
    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@attrs.frozen(kw_only=True)
class Shell(Instruction):
    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Maintainer(Instruction):
    """Deprecated by Docker in favour of a label, still honoured (sets the Author)."""

    keyword: ClassVar[str] = "MAINTAINER"
    name: str


@attrs.frozen(kw_only=True)
class Onbuild(Instruction):
    """`expression` is what goes into the image's OnBuild list; `trigger` is it parsed."""

    keyword: ClassVar[str] = "ONBUILD"
    expression: str
    trigger: Instruction


@attrs.frozen
class Stage:
    """One FROM and the instructions up to the next FROM."""

    index: int
    base: str
    name: str | None
    platform: str | None
    from_: From
    instructions: tuple[Instruction, ...] = ()


@attrs.frozen
class Dockerfile:
    directives: Directives
    args_before_from: tuple[Arg, ...]
    stages: tuple[Stage, ...]
    warnings: tuple[str, ...] = ()

    @property
    def escape(self) -> str:
        return self.directives.escape

    def steps(self) -> Iterator[Instruction]:
        """Every instruction in build order (pre-FROM ARGs, then each FROM and its stage):
        the classic builder's `Step N/M`, M being how many there are."""
        yield from self.args_before_from
        for stage in self.stages:
            yield stage.from_
            yield from stage.instructions

    @property
    def step_count(self) -> int:
        return len(self.args_before_from) + sum(1 + len(s.instructions) for s in self.stages)

    def arg_names(self) -> list[str]:
        """Every ARG name declared, before FROM or in a stage (for the unused
        `--build-arg` warning)."""
        names = [name for arg in self.args_before_from for name, _ in arg.pairs]
        for stage in self.stages:
            names += [n for i in stage.instructions if isinstance(i, Arg) for n, _ in i.pairs]
        return list(dict.fromkeys(names))

    def stage(self, ref: str) -> Stage | None:
        """A stage by name (case-insensitive) or by index, as `--target` and `COPY --from`."""
        for stage in self.stages:
            if stage.name is not None and stage.name == ref.lower():
                return stage
        if ref.isdecimal() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None


# ---------------------------------------------------------------------------------
# pass 1: physical lines to logical lines


@attrs.frozen
class _Node:
    """A logical line split into keyword, flags and arguments, before typing."""

    keyword: str
    flags: tuple[str, ...]
    args: tuple[str, ...]
    json: bool
    original: str
    line: int
    end_line: int
    heredocs: tuple[Heredoc, ...] = ()
    child: _Node | None = None  # ONBUILD's trigger


def _lines(text: str) -> list[str]:
    """Lines split at `\\n` only, endings kept (Python's splitlines splits at more)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _continuation(escape: str) -> re.Pattern[str]:
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")


def _trim_continuation(line: str, pattern: re.Pattern[str]) -> tuple[str, bool]:
    """The line without its continuation mark, and whether the logical line ends here."""
    if pattern.search(line):
        return pattern.sub(lambda m: m.group(1) or "", line), False
    return line, True


class _DirectiveReader:
    """Reads directives from the leading `#` lines; the first other line ends them."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.done = False

    def feed(self, line: str, number: int) -> bool:
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        match = _DIRECTIVE.match(line[1:].lstrip())
        if not match or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            self.done = True
            return False
        name = match.group(1).lower()
        if name in self.values:
            raise DockerfileError(f"only one {name} parser directive can be used", number)
        value = match.group(2)
        if name == "escape" and value not in ("`", "\\"):
            raise DockerfileError(f"invalid escape token '{value}' does not match ` or \\", number)
        self.values[name] = value
        return True


def _split_command(line: str, escape: str) -> tuple[str, tuple[str, ...], str]:
    parts = _SPLIT_WORDS.split(line.strip(), maxsplit=1)
    if len(parts) < 2:
        return parts[0], (), ""
    rest, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, rest.strip()


def _extract_flags(text: str, escape: str) -> tuple[str, tuple[str, ...]]:
    """Leading `--name[=value]` words (quotes and escapes removed), and what follows."""
    flags: list[str] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return "", tuple(flags)
        if not text.startswith("--", pos):
            return text[pos:], tuple(flags)
        word: list[str] = []
        quote = ""
        while pos < len(text):
            ch = text[pos]
            if not quote and ch.isspace():
                break
            pos += 1
            if ch == quote:
                quote = ""
                continue
            if not quote and ch in "'\"":
                quote = ch
                continue
            if ch == escape:
                if pos >= len(text):
                    continue
                ch = text[pos]
                pos += 1
            word.append(ch)
        flag = "".join(word)
        if flag == "--":
            return text[pos:], tuple(flags)
        flags.append(flag)


def _parse_words(text: str, escape: str) -> list[str]:
    """Words of ENV/LABEL/ARG lines: split at blanks outside quotes, quotes and escapes kept."""
    words: list[str] = []
    word: list[str] = []
    in_word = blank_ok = False
    quote = ""
    pos = 0
    while pos < len(text):
        ch = text[pos]
        pos += 1
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if pos >= len(text):
                    continue
                word.append(ch)
                ch = text[pos]
                pos += 1
            word.append(ch)
            continue
        if ch.isspace():
            if in_word and (blank_ok or word):
                words.append("".join(word))
            word, in_word, blank_ok = [], False, False
            continue
        in_word = True
        if ch in "'\"":
            quote, blank_ok = ch, True
        elif ch == escape:
            if pos >= len(text):
                continue
            word.append(ch)
            ch = text[pos]
            pos += 1
        word.append(ch)
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")  # Python reads NaN and Infinity, Go does not


def _parse_json(text: str) -> tuple[str, ...] | None:
    """A JSON array of strings, or None if `text` is not JSON (then it is shell form)."""
    text = text.lstrip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text, parse_constant=_not_json)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise _Refused("when using JSON array syntax, arrays must be comprised of strings only")
    return tuple(value)


def _maybe_json(rest: str) -> tuple[tuple[str, ...], bool]:
    if not rest:
        return (), False
    parsed = _parse_json(rest)
    return (parsed, True) if parsed is not None else ((rest,), False)


def _maybe_json_list(rest: str) -> tuple[tuple[str, ...], bool]:
    parsed = _parse_json(rest)
    if parsed is not None:
        return parsed, True
    return tuple(w for w in _SPLIT_WORDS.split(rest) if w) if rest else (), False


def _name_values(rest: str, keyword: str, escape: str) -> tuple[str, ...]:
    """ENV/LABEL: triples (key, value, "=" or "" for the legacy `KEY value` form)."""
    words = _parse_words(rest, escape)
    if not words:
        return ()
    if "=" not in words[0]:
        parts = _SPLIT_WORDS.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _Refused(f"{keyword} must have two arguments")
        return (parts[0], parts[1], "")
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise _Refused(
                f"Syntax error - can't find = in {_go_quote(word)}. Must be of the form: name=value"
            )
        key, _, value = word.partition("=")
        out += [key, value, "="]
    return tuple(out)


def _health_args(rest: str) -> tuple[tuple[str, ...], bool]:
    """HEALTHCHECK: the type word, then the command as RUN's (shell or JSON)."""
    if not rest:
        return (), False
    parts = re.split(r"\s+", rest, maxsplit=1)
    command, is_json = _maybe_json(parts[1] if len(parts) > 1 else "")
    return (parts[0], *command), is_json


def _args_for(keyword: str, rest: str, escape: str) -> tuple[tuple[str, ...], bool]:
    """Arguments as Docker's line parsers split them, and whether they were JSON."""
    kw = keyword.lower()
    if kw in ("add", "copy", "volume"):
        return _maybe_json_list(rest)
    if kw in ("cmd", "entrypoint", "run", "shell"):
        return _maybe_json(rest)
    if kw in ("env", "label"):
        return _name_values(rest, "ENV" if kw == "env" else "LABEL", escape), False
    if kw == "arg":
        return tuple(_parse_words(rest, escape)), False
    if kw in ("expose", "from"):
        return tuple(_SPLIT_WORDS.split(rest)) if rest else (), False
    if kw == "healthcheck":
        return _health_args(rest)
    if kw in ("maintainer", "stopsignal", "user", "workdir"):
        return ((rest,) if rest else ()), False
    return (), False  # unknown: refused when typed


def _node(line: str, escape: str, number: int, end: int) -> _Node:
    keyword, flags, rest = _split_command(line, escape)
    child = None
    if keyword.lower() == "onbuild":
        args: tuple[str, ...] = ()
        is_json = False
        if rest:
            child = _node(rest, escape, number, end)
    else:
        args, is_json = _args_for(keyword, rest, escape)
    return _Node(keyword, flags, args, is_json, line, number, end, child=child)


def _heredoc_target(node: _Node) -> _Node:
    return node.child if node.keyword.lower() == "onbuild" and node.child is not None else node


def _can_have_heredoc(node: _Node) -> bool:
    target = _heredoc_target(node)
    return target.keyword.lower() in ("run", "copy", "add") and not target.json


def _raw_words(line: str) -> list[str]:
    """The line's shell words with quotes and escapes kept, `<<` glued to its word;
    an unterminated quote gives no words (and so no heredocs), as in Docker."""
    words: list[str] = []
    buf: list[str] = []
    pos = 0
    while pos < len(line):
        ch = line[pos]
        if ch == "'":
            end = line.find("'", pos + 1)
            if end < 0:
                return []
            buf.append(line[pos : end + 1])
            pos = end + 1
        elif ch == '"':
            end = pos + 1
            while end < len(line) and line[end] != '"':
                end += 2 if line[end] == "\\" else 1
            if end >= len(line):
                return []
            buf.append(line[pos : end + 1])
            pos = end + 1
        elif line.startswith("<<", pos):
            end = pos + 2
            while end < len(line) and line[end] in " \t\r":
                end += 1
            buf.append(line[pos:end])
            pos = end
        elif ch == "\\":
            buf.append(line[pos : pos + 2])
            pos += 2
        elif ch.isspace():
            if buf:
                words.append("".join(buf))
                buf = []
            pos += 1
        else:
            buf.append(ch)
            pos += 1
    if buf:
        words.append("".join(buf))
    return words


def _heredoc_name(word: str) -> tuple[str, bool] | None:
    """The terminator a heredoc word names, and whether it was quoted; None if the word
    is not a single shell word."""
    out: list[str] = []
    quoted = False
    pos = 0
    while pos < len(word):
        ch = word[pos]
        pos += 1
        if ch == "'":
            end = word.find("'", pos)
            if end < 0:
                return None
            out.append(word[pos:end])
            pos, quoted = end + 1, True
        elif ch == '"':
            while pos < len(word) and word[pos] != '"':
                if word[pos] == "\\" and pos + 1 < len(word) and word[pos + 1] in '"$\\':
                    pos += 1
                out.append(word[pos])
                pos += 1
            if pos >= len(word):
                return None
            pos, quoted = pos + 1, True
        elif ch == "\\":
            if pos < len(word):
                out.append(word[pos])
                pos += 1
        elif ch.isspace():
            if word[pos:].strip():
                return None
            break
        else:
            out.append(ch)
    name = "".join(out)
    return (name, not quoted) if name else None


def parse_heredoc_word(word: str) -> Heredoc | None:
    """`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF` as an (empty) Heredoc; None for other words."""
    match = _HEREDOC.match(word)
    if not match or not match.group(3):
        return None
    named = _heredoc_name(match.group(3))
    if named is None:
        return None
    fd = int(match.group(1)) if match.group(1) else None
    return Heredoc(name=named[0], content="", expand=named[1], chomp=match.group(2) == "-", fd=fd)


def _logical_lines(text: str) -> tuple[Directives, list[_Node], list[str]]:
    """Pass 1: directives, the logical lines with their heredocs, and warnings."""
    lines = _lines(text[1:] if text.startswith(_BOM) else text)
    reader = _DirectiveReader()
    escape = DEFAULT_ESCAPE
    pattern = _continuation(escape)
    nodes: list[_Node] = []
    warnings: list[str] = []
    index = 0
    while index < len(lines):
        physical = _trim_newline(lines[index]).lstrip()
        index += 1
        if reader.feed(physical, index) and "escape" in reader.values:
            escape = reader.values["escape"]
            pattern = _continuation(escape)
        start = index
        content = "" if _is_comment(physical) else physical
        content, done = _trim_continuation(content, pattern)
        if done and not content:
            continue
        parts = [content]
        empty_continuation = False
        while not done and index < len(lines):
            raw = lines[index]
            index += 1
            if _is_comment(raw):
                continue
            piece = _trim_newline(raw)
            if not piece.lstrip():
                empty_continuation = True
                continue
            piece, done = _trim_continuation(piece, pattern)
            parts.append(piece)
        line = "".join(parts)
        if empty_continuation:
            warnings.append(f"Empty continuation line found in: {line}")
        try:
            node = _node(line, escape, start, index)
        except _Refused as err:
            raise DockerfileError(str(err), start, index) from None
        if _can_have_heredoc(node) and "<<" in line:
            node, index = _read_heredocs(node, line, lines, index)
        nodes.append(node)
    directives = Directives(
        escape=escape, syntax=reader.values.get("syntax"), check=reader.values.get("check")
    )
    return directives, nodes, warnings


def _read_heredocs(node: _Node, line: str, lines: Sequence[str], index: int) -> tuple[_Node, int]:
    docs: list[Heredoc] = []
    for word in _raw_words(line):
        doc = parse_heredoc_word(word)
        if doc is None:
            continue
        body: list[str] = []
        while True:
            if index >= len(lines):
                raise DockerfileError("unterminated heredoc", node.line, index)
            raw = lines[index]
            index += 1
            candidate = _trim_newline(raw)
            if doc.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == doc.name:
                break
            body.append(raw)
        docs.append(attrs.evolve(doc, content="".join(body)))
    return attrs.evolve(node, heredocs=tuple(docs), end_line=index), index


# ---------------------------------------------------------------------------------
# pass 2: logical lines to records


_FlagValue = bool | str | list[str]


def _levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _suggest(value: str, options: Sequence[str], *, case_sensitive: bool) -> str:
    """Docker's `(did you mean X?)` tail: the closest option under distance 3."""
    probe = value if case_sensitive else value.lower()
    best, best_distance = "", 3
    for option in sorted(options):
        candidate = option if case_sensitive else option.lower()
        if candidate == probe:
            return ""
        distance = _levenshtein(probe, candidate)
        if distance < best_distance:
            best, best_distance = candidate, distance
    if not best:
        return ""
    if not case_sensitive:
        best = best.lower() if value == value.lower() else best.upper() if value == value.upper() else best
    return f" (did you mean {best}?)"


def _parse_flags(words: Sequence[str], spec: Mapping[str, str]) -> dict[str, _FlagValue]:
    """Docker's builder flags: `spec` maps a name to "bool", "string" or "strings"."""
    values: dict[str, _FlagValue] = {}
    for word in words:
        if word == "--":
            break
        if not word.startswith("--"):
            raise _Refused(f"arg should start with -- : {word}")
        flag, has_value, value = word.partition("=")
        name = flag[2:]
        kind = spec.get(name)
        if kind is None:
            raise _Refused(f"unknown flag: {flag}" + _suggest(name, list(spec), case_sensitive=True))
        if name in values and kind != "strings":
            raise _Refused(f"duplicate flag specified: {flag}")
        if kind == "bool":
            if has_value and not value:
                raise _Refused(f"missing a value on flag: {flag}")
            if value.lower() not in ("true", "false", ""):
                raise _Refused(f"expecting boolean value for flag {flag}, not: {value}")
            values[name] = value.lower() != "false"
        elif not has_value:
            raise _Refused(f"missing a value on flag: {flag}")
        elif kind == "strings":
            previous = values.get(name)
            values[name] = [*(previous if isinstance(previous, list) else []), value]
        else:
            values[name] = value
    return values


def _opt_str(flags: Mapping[str, _FlagValue], name: str) -> str | None:
    value = flags.get(name)
    return value if isinstance(value, str) else None


def _opt_strs(flags: Mapping[str, _FlagValue], name: str) -> tuple[str, ...]:
    value = flags.get(name)
    return tuple(value) if isinstance(value, list) else ()


def _exactly_one(node: _Node, keyword: str) -> str:
    if len(node.args) != 1:
        raise _Refused(f"{keyword} requires exactly one argument")
    return node.args[0]


def _at_least_one(node: _Node, keyword: str) -> None:
    if not node.args:
        raise _Refused(f"{keyword} requires at least one argument")


def _command(node: _Node) -> Command:
    return node.args if node.json else " ".join(node.args)


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds."""
    quoted = _go_quote(text)
    body = text[1:] if text[:1] in "+-" else text
    sign = -1 if text.startswith("-") else 1
    if body == "0":
        return 0
    if not body:
        raise _Refused(f"time: invalid duration {quoted}")
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if not match or match.end() == pos or not (match.group(1) or match.group(2)):
            raise _Refused(f"time: invalid duration {quoted}")
        unit = match.group(3)
        if not unit:
            raise _Refused(f"time: missing unit in duration {quoted}")
        if unit not in _NS:
            raise _Refused(f"time: unknown unit {_go_quote(unit)} in duration {quoted}")
        number = float(f"{match.group(1) or '0'}.{match.group(2) or '0'}")
        total += number * _NS[unit]
        pos = match.end()
    return sign * round(total)


def _interval(flags: Mapping[str, _FlagValue], name: str) -> int:
    value = _opt_str(flags, name)
    if not value:
        return 0
    nanos = _parse_duration(value)
    if nanos != 0 and nanos < 1_000_000:
        raise _Refused(f"Interval {_go_quote(name)} cannot be less than 1ms")
    return nanos


_HEALTH_FLAGS = {n: "string" for n in ("interval", "timeout", "start-period", "start-interval", "retries")}
_MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_MOUNT_KEYS = frozenset(
    {"type", "from", "source", "src", "target", "dst", "destination", "readonly", "ro", "readwrite", "rw"}
    | {"id", "sharing", "required", "size", "mode", "uid", "gid", "env"}
)


def _parse_mount(spec: str) -> RunMount:
    """One `--mount` value: CSV fields, checked the way Docker checks them before expansion."""
    try:
        fields = next(csv.reader([spec]), [])
    except csv.Error as err:
        raise _Refused(f"failed to parse csv mounts: {err}") from None
    mount_type = "bind"
    target = source = from_ = None
    readonly: bool | None = None
    options: dict[str, str] = {}
    for field in fields:
        key, has_value, value = field.partition("=")
        key = key.lower()
        if not has_value:
            if key in ("readonly", "ro", "readwrite", "rw"):
                readonly = key in ("readonly", "ro")
            elif key == "required":
                options["required"] = "true"
            else:
                raise _Refused(f"invalid field '{field}' must be a key=value pair")
            continue
        if key not in _MOUNT_KEYS:
            raise _Refused(f"unexpected key '{key}' in '{field}'")
        if key == "type":
            if value.lower() not in _MOUNT_TYPES:
                raise _Refused(f"unsupported mount type {_go_quote(value)}")
            mount_type = value.lower()
        elif key == "from":
            if "$" in value[:-1]:
                raise _Refused("'from' doesn't support variable expansion, define alias stage instead")
            from_ = value
        elif key in ("source", "src"):
            source = value
        elif key in ("target", "dst", "destination"):
            target = value
        elif key in ("readonly", "ro", "readwrite", "rw"):
            flag = value.lower() in ("1", "t", "true")
            if value.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise _Refused(f"invalid value for {key}: {value}")
            readonly = flag if key in ("readonly", "ro") else not flag
        else:
            options[key] = value
    return RunMount(
        type=mount_type,
        target=target,
        source=source,
        from_=from_,
        readonly=readonly,
        options=options,
        raw=spec,
    )


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
    return Expose(ports=tuple(sorted(node.args)), **base)


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


def parse(source: bytes | str) -> Dockerfile:
    """Parse a whole Dockerfile; raises DockerfileError with Docker's wording."""
    text = source.decode("utf-8", errors="replace") if isinstance(source, bytes) else source
    directives, nodes, warnings = _logical_lines(text)
    if not nodes:
        raise DockerfileError("file with no instructions", 0)
    args_before_from: list[Arg] = []
    stages: list[Stage] = []
    for node in nodes:
        try:
            instruction = _instruction(node)
        except _Refused as err:
            raise DockerfileError(str(err), node.line, node.end_line) from None
        if isinstance(instruction, From):
            stages.append(
                Stage(
                    index=len(stages),
                    base=instruction.base,
                    name=instruction.stage_name,
                    platform=instruction.platform,
                    from_=instruction,
                )
            )
        elif not stages and isinstance(instruction, Arg):
            args_before_from.append(instruction)
        elif not stages:
            raise DockerfileError("no build stage in current context", node.line, node.end_line)
        else:
            stages[-1] = attrs.evolve(stages[-1], instructions=(*stages[-1].instructions, instruction))
    return Dockerfile(
        directives=directives,
        args_before_from=tuple(args_before_from),
        stages=tuple(stages),
        warnings=tuple(warnings),
    )


def parse_instruction(line: str, *, escape: str = DEFAULT_ESCAPE, number: int = 1) -> Instruction:
    """One instruction on its own, such as an ONBUILD trigger stored in an image, or a
    `docker commit --change` line."""
    parsed = _logical_lines(f"# escape={escape}\n{line}" if escape != DEFAULT_ESCAPE else line)
    nodes = parsed[1]
    if len(nodes) != 1:
        raise DockerfileError("onbuild trigger should be a single expression", number)
    try:
        return _instruction(nodes[0])
    except _Refused as err:
        raise DockerfileError(str(err), number) from None
