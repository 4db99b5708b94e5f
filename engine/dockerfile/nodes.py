"""One logical line to a `_Node`: keyword, builder flags and arguments, not yet typed.

These are Docker's per-instruction line parsers: JSON against shell form, ENV/LABEL
`name=value` words with quotes kept, HEALTHCHECK's type word. Checking the arguments
and typing them is `instructions`' job.
"""

from __future__ import annotations

import json
import re

import attrs

from engine.dockerfile.errors import _go_quote, _Refused
from engine.dockerfile.records import Heredoc

# the ASCII blanks Docker splits instruction words on
_SPLIT_WORDS = re.compile(r"[\t\v\f\r ]+")


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
