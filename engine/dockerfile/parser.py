"""`parse` and `parse_instruction`: both passes run, and the records grouped into stages."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from engine.dockerfile.errors import DockerfileError, _Refused
from engine.dockerfile.instructions import _instruction
from engine.dockerfile.lines import _logical_lines
from engine.dockerfile.records import (
    DEFAULT_ESCAPE,
    Arg,
    Directives,
    Dockerfile,
    From,
    Instruction,
    Stage,
)


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


def parse_instructions(
    source: str, *, accept: Callable[[str], None] | None = None
) -> tuple[Directives, tuple[Instruction, ...]]:
    """Instructions on their own, not grouped into stages and with no FROM needed, as
    `docker commit --change` gives them (dockerd's BuildFromConfig parses them so).

    `accept` sees each keyword, lower-cased, once the whole text is split into lines and
    before any instruction is checked; it raises to refuse one.
    """
    directives, nodes, _ = _logical_lines(source)
    if accept is not None:
        for node in nodes:
            accept(node.keyword.lower())
    instructions = []
    for node in nodes:
        try:
            instructions.append(_instruction(node))
        except _Refused as err:
            raise DockerfileError(str(err), node.line, node.end_line) from None
    return directives, tuple(instructions)


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
