"""Pass 1: physical lines to logical lines, with the directives and the heredoc bodies.

Directives are read from the leading comment block only; an escape character at the
end of a line continues it; comments and blank lines inside a continuation are
skipped (a blank one earns a warning, as in Docker); heredoc bodies are the lines
after the one that opens them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from engine.dockerfile.errors import DockerfileError, _Refused
from engine.dockerfile.heredocs import _can_have_heredoc, _raw_words, parse_heredoc_word
from engine.dockerfile.nodes import _Node, _node
from engine.dockerfile.records import DEFAULT_ESCAPE, Directives, Heredoc

_BOM = "\ufeff"
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})


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
