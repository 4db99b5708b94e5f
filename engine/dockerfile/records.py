"""The typed records the parser produces, kept apart so readers need not import the parser."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import ClassVar

import attrs

DEFAULT_ESCAPE = "\\"


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
    # as written: the order they go into a config's list (Docker's is a set)
    in_order: tuple[str, ...] = ()


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
