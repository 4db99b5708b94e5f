"""Heredoc words (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`): which lines may have them, and
what each one names. Reading the bodies is `lines`' job, as it owns the physical lines.
"""

from __future__ import annotations

import re

from engine.dockerfile.nodes import _Node
from engine.dockerfile.records import Heredoc

_HEREDOC = re.compile(r"^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)$")


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
