"""Dockerfile parsing: bytes in, typed instruction records out, no I/O.

The language itself, apart from any build: the builder (`engine.build`) runs what it
parses, and `commit --change` / `import --change` (`engine.images.changes`) apply
the same instructions with the same syntax.

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
`engine.dockerfile.substitution.expand` with the values in scope at build time. RUN, CMD
and ENTRYPOINT are a string (shell form) or a tuple (exec form, JSON); text that
looks like JSON but does not parse is shell form, as in Docker.

Errors are `DockerfileError`s carrying the line, worded as Docker words them and
prefixed `dockerfile parse error on line N:` (Docker's prefix for instruction errors;
moorage puts it on line-joining errors too, so every message names its line).
Differences from Docker: an ONBUILD trigger is parsed when the ONBUILD is, so a bad
trigger fails this build rather than the child's; stage names are not checked for
duplicates (the builder decides).

The package, one job a module: `records` (what comes out), `errors` (Docker's
wording), `lines` (pass 1), `nodes` (splitting one logical line), `heredocs`
(heredoc words), `flags` (builder flags), `mounts` (`RUN --mount`), `instructions`
(pass 2; Go durations are `engine.durations`'), `parser` (`parse`, stages).
"""

from engine.dockerfile.errors import DockerfileError
from engine.dockerfile.heredocs import parse_heredoc_word
from engine.dockerfile.parser import parse, parse_instruction, parse_instructions
from engine.dockerfile.records import (
    DEFAULT_ESCAPE,
    Add,
    Arg,
    Cmd,
    Command,
    Copy,
    Directives,
    Dockerfile,
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
    RunMount,
    Shell,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
)

__all__ = [
    "DEFAULT_ESCAPE",
    "Add",
    "Arg",
    "Cmd",
    "Command",
    "Copy",
    "Directives",
    "Dockerfile",
    "DockerfileError",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "Healthcheck",
    "Heredoc",
    "Instruction",
    "Label",
    "Maintainer",
    "Onbuild",
    "Run",
    "RunMount",
    "Shell",
    "Stage",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
    "parse",
    "parse_heredoc_word",
    "parse_instruction",
    "parse_instructions",
]
