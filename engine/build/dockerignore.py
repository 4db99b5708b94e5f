"""`.dockerignore`: which files of a build context are left out, by Docker's rules.

Reading the file (Docker's rules):
- a UTF-8 byte-order mark is dropped; lines are split at `\\n` (a `\\r` before it goes);
- a line whose first character is `#` is a comment (`  #x` is the pattern `#x`);
- blanks around a line are trimmed, blank lines skipped;
- `!` makes an exception (blanks after it trimmed too); a lone `!` is an error;
- the pattern is cleaned like Go's filepath.Clean (`./a` is `a`, `a//b/../c` is `a/c`)
  and one leading `/` removed (`/a` is `a`; `/` alone stays and matches nothing).

Matching, for a slash-separated path relative to the context root:
- `*` is any run of characters but `/`, `?` one character but `/`, `[...]` a class,
  `\\` makes the next character literal;
- `**` is any number of directories, none included (`**/a` matches `a` and `x/y/a`,
  `a/**` everything below `a`); a pattern starting with `**` and otherwise plain
  (`**.log`) matches any path ending with the rest, as Docker's matcher does;
- a pattern that matches a directory matches everything below it;
- rules are applied in order and the last rule matching a path (or one of its
  parents) decides: a later `!` exception brings back what earlier rules left out,
  a later exclusion takes it away again. The context root itself is never excluded.

Walking: an excluded directory can only be skipped when no later exception could
bring back something below it (`may_reinclude_below`). Docker's CLI checks that by
comparing pattern prefixes only, and so misses files that a wildcard exception such
as `!**/*.go` re-includes below an excluded directory; moorage sends those.

The Dockerfile and `.dockerignore` themselves: Docker's CLI always sends them, even
when excluded (it adds `!` exceptions for them, `with_build_files_kept`), because the
daemon must read them; the daemon then deletes from the context those that the
`.dockerignore` excludes (`build_files_to_drop`), so `COPY . .` does not see them.
moorage follows both halves of that rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from engine.errors import InvalidParameter

DOCKERIGNORE = ".dockerignore"


class DockerIgnoreError(InvalidParameter):
    """A `.dockerignore` pattern Docker refuses."""


def clean_path(path: str) -> str:
    """Go's filepath.Clean for `/`-separated paths (posixpath.normpath keeps `//a`)."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append(part)
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def read_patterns(text: str | bytes) -> list[str]:
    """The patterns of a `.dockerignore` file, cleaned, exceptions still marked `!`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.removeprefix("\ufeff")
    patterns = []
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _class_end(pattern: str, start: int) -> int:
    """Index just past the `]` closing the class opened at `start`, or -1."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i + 1
        i += 1
    return -1


def _class_regex(body: str) -> str:
    """A filepath.Match class body (`^` negates, `\\` escapes) as a Python class."""
    negate = body.startswith("^")
    if negate:
        body = body[1:]
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(re.escape(body[i + 1]))
            i += 2
            continue
        out.append(ch if ch == "-" else re.escape(ch))
        i += 1
    return "[" + ("^" if negate else "") + "".join(out) + "]"


@attrs.frozen
class Rule:
    """One cleaned pattern, how Docker's matcher classified it, and its regex."""

    pattern: str
    exception: bool
    kind: str  # exact, prefix, suffix or regex
    regex: re.Pattern[str] | None = attrs.field(eq=False, default=None)

    @classmethod
    def parse(cls, line: str) -> Rule:
        line = clean_path(line.strip())  # as Docker's matcher does, `!` still in front
        exception = line.startswith("!")
        if exception:
            if len(line) == 1:
                raise DockerIgnoreError('illegal exclusion pattern: "!"')
            line = line[1:]
        kind, regex = _compile(line)
        return cls(pattern=line, exception=exception, kind=kind, regex=regex)

    def matches(self, path: str) -> bool:
        """Does the pattern match `path` itself (parents are the caller's business)?"""
        if self.kind == "exact":
            return path == self.pattern
        if self.kind == "prefix":
            return path.startswith(self.pattern[:-2])
        if self.kind == "suffix":
            suffix = self.pattern[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None

    def matches_or_parent(self, path: str) -> bool:
        """Does it match `path` or a directory above it?"""
        if self.matches(path):
            return True
        parts = path.split("/")
        return any(self.matches("/".join(parts[:i])) for i in range(1, len(parts)))

    def may_match_below(self, directory: str) -> bool:
        """Could the pattern match some path strictly below `directory`? Errs on yes."""
        below = directory + "/"
        if self.kind == "exact":
            return self.pattern.startswith(below)
        if self.kind == "prefix":
            prefix = self.pattern[:-2]
            return prefix.startswith(below) or below.startswith(prefix)
        if self.kind == "suffix" or any(mark in self.pattern for mark in ("**", "[", "\\")):
            return True  # may span directories, or too odd to reason about: assume yes
        segments = self.pattern.split("/")
        dirs = directory.split("/")
        for i, name in enumerate(dirs):
            if i >= len(segments):
                return True  # it matches a parent of `directory`, so all below it
            if not re.fullmatch(_compile(segments[i])[1] or re.escape(segments[i]), name):
                return False
        return True


def _compile(pattern: str) -> tuple[str, re.Pattern[str] | None]:
    """Docker's classification of a pattern and, for `regex`, the expression."""
    out = ["^"]
    kind = "exact"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*" and pattern.startswith("**", i):
            first = i == 0
            i += 2
            if pattern.startswith("/", i):
                i += 1
            if i >= len(pattern):
                if kind == "exact":
                    kind = "prefix"
                else:
                    out.append(".*")
                    kind = "regex"
            else:
                out.append("(.*/)?")
                kind = "regex"
            if first:
                kind = "suffix"
            continue
        i += 1
        if ch == "*":
            out.append("[^/]*")
            kind = "regex"
        elif ch == "?":
            out.append("[^/]")
            kind = "regex"
        elif ch == "\\":
            if i >= len(pattern):
                raise DockerIgnoreError("syntax error in pattern")
            out.append(re.escape(pattern[i]))
            i += 1
            kind = "regex"
        elif ch == "[":
            end = _class_end(pattern, i - 1)
            if end < 0:
                raise DockerIgnoreError("syntax error in pattern")
            out.append(_class_regex(pattern[i : end - 1]))
            i = end
            kind = "regex"
        else:
            out.append(re.escape(ch))
    if kind != "regex":
        return kind, None
    return kind, re.compile("".join(out) + r"\Z")


@attrs.frozen
class DockerIgnore:
    """The rules of one `.dockerignore`, in order."""

    rules: tuple[Rule, ...] = ()

    @classmethod
    def parse(cls, text: str | bytes) -> DockerIgnore:
        return cls.from_patterns(read_patterns(text))

    @classmethod
    def from_patterns(cls, patterns: Iterable[str]) -> DockerIgnore:
        return cls(tuple(Rule.parse(p) for p in patterns if p.strip()))

    @property
    def has_exceptions(self) -> bool:
        return any(rule.exception for rule in self.rules)

    def _deciding_rule(self, path: str) -> int:
        """Index of the last rule matching `path` or a parent of it, -1 if none."""
        for index in range(len(self.rules) - 1, -1, -1):
            if self.rules[index].matches_or_parent(path):
                return index
        return -1

    def excludes(self, path: str) -> bool:
        """Is `path` (relative, `/`-separated) left out of the context?"""
        path = clean_path(path).lstrip("/")
        if path in ("", "."):
            return False
        index = self._deciding_rule(path)
        return index >= 0 and not self.rules[index].exception

    def may_reinclude_below(self, directory: str) -> bool:
        """Could an exception bring back anything below `directory`? Only exceptions
        after the rule that excluded it can, and only if they match below it."""
        directory = clean_path(directory).lstrip("/")
        if directory in ("", "."):
            return self.has_exceptions
        start = self._deciding_rule(directory) + 1
        return any(rule.exception and rule.may_match_below(directory) for rule in self.rules[start:])

    def can_skip_directory(self, directory: str) -> bool:
        """May a walker leave out `directory` and all below it without looking?"""
        return self.excludes(directory) and not self.may_reinclude_below(directory)

    def with_build_files_kept(self, dockerfile: str) -> DockerIgnore:
        """The rules the CLI sends the context with: `.dockerignore` and the Dockerfile
        are sent even when excluded (the daemon needs them)."""
        extra = [name for name in (DOCKERIGNORE, clean_path(dockerfile)) if self.excludes(name)]
        return DockerIgnore((*self.rules, *(Rule.parse("!" + name) for name in dict.fromkeys(extra))))

    def build_files_to_drop(self, dockerfile: str) -> list[str]:
        """Which of `.dockerignore` and the Dockerfile the daemon deletes from the
        received context once it has read them: those these rules exclude."""
        names = dict.fromkeys((DOCKERIGNORE, clean_path(dockerfile).lstrip("/")))
        return [name for name in names if self.excludes(name)]
