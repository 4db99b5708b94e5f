"""Variable expansion in Dockerfile arguments, and the ARG/ENV scope it reads from.

Docker does not run a shell on `COPY $SRC $DEST`: the builder has its own small
shell-word lexer, and images built by moorage must see the same words. The rules
(taken from Docker's builder, shared by the classic builder and BuildKit):

- `$NAME` and `${NAME}`; a name is letters, digits and `_`, or a run of digits (a
  positional parameter, never set), or one of the special parameters `@*#?-$!0`
  (never set either). `$` not followed by a name is a literal `$`.
- `${NAME:-word}` / `${NAME-word}`: word if NAME is unset (or, with `:`, empty).
- `${NAME:+word}` / `${NAME+word}`: word if NAME is set (and, with `:`, non-empty),
  else the empty string.
- `${NAME:?msg}` / `${NAME?msg}`: an error (`NAME: msg`, or `NAME: is not allowed to
  be unset` / `... empty`) if NAME is unset (or, with `:`, empty).
- `${NAME#pat}`, `${NAME##pat}`, `${NAME%pat}`, `${NAME%%pat}`: remove the shortest
  or longest prefix or suffix matching a shell pattern (`*`, `?`, `\\` escapes; no
  bracket expressions). `:#` and `:%` are errors.
- `${NAME/pat/repl}`, `${NAME//pat/repl}`: replace the first or every match of a
  pattern (the replacement is literal text).
- Everything else after a name (`${A:=b}`, `${#A}`, `${A:1}`) is `unsupported modifier`;
  `${}` and `${:...}` are `bad substitution`; a missing `}` is `missing '}'`.
- Quotes: nothing is expanded between single quotes; double quotes expand `$` and
  let the escape character escape only `"`, `$` and itself. Quotes are removed.
- The escape character (`\\`, or `` ` `` under `# escape=`), outside quotes, makes
  the next character literal (`\\$` is a literal `$`) and is removed; at the very
  end it is dropped.
- Word splitting (`expand_words`, used by EXPOSE and by the exec forms Docker
  splits): unquoted whitespace separates words, including whitespace that came out
  of an expansion; quoted text never splits; empty words are dropped.

Which instructions expand (with the ENV and ARG values in scope at that point):
ADD, COPY (sources, destination, `--chown`, `--chmod`, ADD's `--checksum`), ENV and
LABEL (keys and values), ARG (names and defaults), EXPOSE (words), FROM (image and
`--platform`, from the ARGs before the first FROM only), STOPSIGNAL, USER, VOLUME,
WORKDIR. Not RUN, CMD, ENTRYPOINT, HEALTHCHECK or SHELL (the container's shell
expands those at run time), not ONBUILD (its trigger is expanded when it fires),
not MAINTAINER.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

import attrs

from engine.errors import InvalidParameter

DEFAULT_ESCAPE = "\\"

# the proxy variables every build may pass without an ARG for them (Docker excludes
# them from the image history unless the Dockerfile declares them)
PROXY_ARGS: frozenset[str] = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)

# instructions whose arguments the builder expands, and EXPOSE's word splitting
EXPANDED_INSTRUCTIONS: frozenset[str] = frozenset(
    {"ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
)
WORD_SPLIT_INSTRUCTIONS: frozenset[str] = frozenset({"EXPOSE"})

_SPECIAL_PARAMS = "@*#?-$!0"
_PATTERN_META = "[]{}.+()|^$"


class SubstitutionError(InvalidParameter):
    """A `${...}` that Docker's lexer refuses, or a `${V?msg}` whose V is unset."""


class _Syntax(Exception):
    """An error inside the lexer; `expand` wraps it with the text it was processing."""


def expand(text: str, env: Mapping[str, str], *, escape: str = DEFAULT_ESCAPE) -> str:
    """`text` with variables expanded and quotes and escapes removed, as one word."""
    return _Lexer(text, env, escape).run()[0]


def expand_words(text: str, env: Mapping[str, str], *, escape: str = DEFAULT_ESCAPE) -> list[str]:
    """`text` expanded and split into words at unquoted whitespace (EXPOSE's rule)."""
    return _Lexer(text, env, escape).run()[1]


def _go_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r") + '"'


def _is_space(ch: str) -> bool:
    """Go's unicode.IsSpace, which the lexer splits on (Python's isspace is wider)."""
    return ch in "\t\n\v\f\r \x85\xa0" or unicodedata.category(ch) == "Zs"


def _is_name_char(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdecimal()


class _Words:
    """Accumulates words: expansion output splits at whitespace, quoted text never."""

    def __init__(self) -> None:
        self._buf: list[str] = []
        self._words: list[str] = []
        self._in_word = False

    def add_char(self, ch: str) -> None:
        if _is_space(ch):
            # an empty quoted string ("") keeps the word open but never makes one
            if self._in_word and any(self._buf):
                self._words.append("".join(self._buf))
                self._buf = []
                self._in_word = False
        else:
            self.add_raw(ch)

    def add_text(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw(self, text: str) -> None:
        self._buf.append(text)
        self._in_word = True

    def finish(self) -> list[str]:
        if any(self._buf):
            self._words.append("".join(self._buf))
            self._buf = []
        return self._words


class _Lexer:
    """One pass over one argument; `run` returns the single word and the split words."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.env = env
        self.escape = escape
        self.pos = 0
        self.raw_escapes = False

    def run(self) -> tuple[str, list[str]]:
        try:
            return self._until(None, raw_escapes=False)
        except _Syntax as err:
            raise SubstitutionError(f"failed to process {_go_quote(self.text)}: {err}") from None

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        self.pos += 1 if ch else 0
        return ch

    def _until(self, stop: str | None, *, raw_escapes: bool) -> tuple[str, list[str]]:
        """Process up to `stop` (consumed) or the end; `raw_escapes` keeps escape chars."""
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._scan(stop)
        finally:
            self.raw_escapes = saved

    def _scan(self, stop: str | None) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self._peek():
            ch = self._peek()
            if stop is not None and ch == stop:
                self.pos += 1
                return "".join(result), words.finish()
            if ch == "$":
                value = self._dollar()
                result.append(value)
                words.add_text(value)
            elif ch in "'\"<":
                quoted = {"'": self._single_quote, '"': self._double_quote, "<": self._angle}
                value = quoted[ch]()
                result.append(value)
                words.add_raw(value)
            else:
                self.pos += 1
                if ch == self.escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = self._next()
                    if not ch:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop is not None:
            raise _Syntax(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.finish()

    def _angle(self) -> str:
        """`<<` and the blanks after it stay glued to the next word (heredoc markers)."""
        self.pos += 1
        if self._peek() != "<":
            return "<"
        self.pos += 1
        start = self.pos
        while self._peek() in ("\t", "\r", " ") and self._peek():
            self.pos += 1
        return "<<" + self.text[start : self.pos]

    def _single_quote(self) -> str:
        self.pos += 1
        end = self.text.find("'", self.pos)
        if end < 0:
            raise _Syntax("unexpected end of statement while looking for matching single-quote")
        value, self.pos = self.text[self.pos : end], end + 1
        return value

    def _double_quote(self) -> str:
        self.pos += 1
        out: list[str] = []
        while True:
            ch = self._peek()
            if not ch:
                raise _Syntax("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            self.pos += 1
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self._peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _name(self) -> str:
        start = self.pos
        ch = self._peek()
        if ch and ch.isdecimal():
            while self._peek() and self._peek().isdecimal():
                self.pos += 1
            return self.text[start : self.pos]
        if ch and ch in _SPECIAL_PARAMS:
            self.pos += 1
            return ch
        while self._peek() and _is_name_char(self._peek()):
            self.pos += 1
        return self.text[start : self.pos]

    def _word_until_brace(self, *, raw: bool) -> str:
        try:
            return self._until("}", raw_escapes=raw)[0]
        except _Syntax:
            if not self._peek():
                raise _Syntax("syntax error: missing '}'") from None
            raise

    def _dollar(self) -> str:
        self.pos += 1
        if self._peek() != "{":
            name = self._name()
            return self.env.get(name, "") if name else "$"
        self.pos += 1
        ch = self._peek()
        if not ch:
            raise _Syntax("syntax error: missing '}'")
        if ch in "{}:":
            raise _Syntax("syntax error: bad substitution")
        name = self._name()
        op = self._next()
        if not op:
            raise _Syntax("syntax error: missing '}'")
        if op == "}":
            return self.env.get(name, "")
        if op == "/":
            return self._replace(name)
        colon = op == ":"
        if colon:
            op = self._next()
        modifier = (":" if colon else "") + op
        if op not in ("-", "+", "?", "#", "%") and not colon:
            raise _Syntax(f"unsupported modifier ({modifier}) in substitution")
        raw = op in ("#", "%")
        if colon and raw:
            raise _Syntax(f"unsupported modifier ({modifier}) in substitution")
        word = self._word_until_brace(raw=raw)
        is_set = name in self.env
        value = self.env.get(name, "")
        unset = not is_set or (colon and value == "")
        if op == "-":
            return word if unset else value
        if op == "+":
            return "" if unset else word
        if op == "?":
            if not is_set:
                raise _Syntax(f"{name}: {word or 'is not allowed to be unset'}")
            if colon and value == "":
                raise _Syntax(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if op in ("#", "%"):
            greedy = word.startswith(op)
            pattern = word[1:] if greedy else word
            return _trim_suffix(pattern, value, greedy) if op == "%" else _trim_prefix(pattern, value, greedy)
        raise _Syntax(f"unsupported modifier ({modifier}) in substitution")

    def _replace(self, name: str) -> str:
        replace_all = self._peek() == "/"
        if replace_all:
            self.pos += 1
        try:
            pattern = self._until("/", raw_escapes=True)[0]
        except _Syntax:
            if not self._peek():
                raise _Syntax("syntax error: missing '/' in ${}") from None
            raise
        replacement = self._word_until_brace(raw=True)
        value = self.env.get(name, "")
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        return regex.sub(lambda _m: replacement, value, count=0 if replace_all else 1)


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell pattern (`*`, `?`, backslash escapes) as a regular expression."""
    out = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/") and nxt:
                continue  # escaped to get past the ${} parser, literal in the pattern
            if nxt not in ("*", "?", "\\") or not nxt:
                raise _Syntax(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'")
            out.append(re.escape(nxt))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[match.end() :] if match else value


def _reverse_pattern(pattern: str) -> str:
    """The pattern backwards, an escape still before the character it escapes."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i : i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # a regex finds the leftmost match: reverse both to find the rightmost one
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _frozen_map(value: Mapping[str, str | None] | None) -> dict[str, str | None]:
    return dict(value or {})


def _frozen_str_map(value: Mapping[str, str] | None) -> dict[str, str]:
    return dict(value or {})


@attrs.frozen
class ArgScope:
    """What `$NAME` means at one point of a build: ARGs, `--build-arg`s and ENV.

    Docker's rules, which this models (each method returns a new scope):

    - ARGs before the first FROM (`declare_meta`) are visible only to FROM lines
      (`meta_values`), never inside a stage unless the stage declares them again with
      `ARG NAME` (no default: it takes the value from before FROM).
    - Inside a stage (`enter_stage`), a declared ARG's value is the `--build-arg`
      value if one was given, else its default, else the pre-FROM value; an ARG with
      none of those is declared but unset.
    - ENV beats ARG: `values()` lays the stage's ENV (the base image's and ENV
      instructions') over the ARGs. RUN containers get the same environment.
    - The proxy variables in PROXY_ARGS may be passed as `--build-arg` without any ARG:
      they are in scope everywhere, but only go into the RUN history when declared.
    - All pairs of one ENV or ARG line are expanded with the values from before that
      line (`ENV a=1 b=$a` gives b the old a), as Docker does.
    """

    build_args: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_str_map)
    meta: Mapping[str, str | None] = attrs.field(factory=dict, converter=_frozen_map)
    declared: Mapping[str, str | None] = attrs.field(factory=dict, converter=_frozen_map)
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_str_map)
    in_stage: bool = False

    def _proxies(self) -> dict[str, str]:
        return {k: v for k, v in self.build_args.items() if k in PROXY_ARGS}

    def meta_values(self) -> dict[str, str]:
        """The values a FROM line (image and `--platform`) is expanded with."""
        values = self._proxies()
        for name, default in self.meta.items():
            if name in self.build_args:
                values[name] = self.build_args[name]
            elif default is not None:
                values[name] = default
        return values

    def arg_values(self) -> dict[str, str]:
        """The stage's ARGs with values (before ENV is laid over them)."""
        if not self.in_stage:
            return self.meta_values()
        values = self._proxies()
        meta = self.meta_values()
        for name, default in self.declared.items():
            if name in self.build_args:
                values[name] = self.build_args[name]
            elif default is not None:
                values[name] = default
            elif name in meta and name in self.meta:
                values[name] = meta[name]
        return values

    def values(self) -> dict[str, str]:
        """What `$NAME` expands to here, and the environment a RUN step gets."""
        values = self.arg_values()
        values.update(self.env)
        return values

    def history_args(self) -> list[str]:
        """`K=V` ARGs a RUN records in its history and cache key: ENV-shadowed ones
        and undeclared proxy variables are left out, as Docker leaves them out."""
        return sorted(
            f"{k}={v}"
            for k, v in self.arg_values().items()
            if k not in self.env and (k not in PROXY_ARGS or k in self.declared)
        )

    def declare_meta(self, name: str, default: str | None) -> ArgScope:
        """An ARG before the first FROM (`default` already expanded)."""
        return attrs.evolve(self, meta={**self.meta, name: default})

    def enter_stage(self, base_env: Mapping[str, str] | Iterable[str] = ()) -> ArgScope:
        """A FROM: no ARG declared yet, the base image's ENV (a mapping or `K=V` list)."""
        env = dict(base_env) if isinstance(base_env, Mapping) else dict(_split_kv(e) for e in base_env)
        return attrs.evolve(self, declared={}, env=env, in_stage=True)

    def declare(self, name: str, default: str | None) -> ArgScope:
        """An ARG inside a stage (`default` already expanded)."""
        if not self.in_stage:
            return self.declare_meta(name, default)
        return attrs.evolve(self, declared={**self.declared, name: default})

    def set_env(self, name: str, value: str) -> ArgScope:
        """An ENV pair (`value` already expanded)."""
        return attrs.evolve(self, env={**self.env, name: value})

    def apply_arg(self, pairs: Sequence[tuple[str, str | None]], *, escape: str = DEFAULT_ESCAPE) -> ArgScope:
        """One ARG line: names and defaults expanded with the values from before it."""
        values = self.values()
        scope = self
        for name, default in pairs:
            value = None if default is None else expand(default, values, escape=escape)
            scope = scope.declare(expand(name, values, escape=escape), value)
        return scope

    def env_pairs(self, pairs: Sequence[tuple[str, str]], *,
                  escape: str = DEFAULT_ESCAPE) -> list[tuple[str, str]]:
        """One ENV line's pairs, keys and values expanded with the values from before it."""
        values = self.values()
        return [(expand(name, values, escape=escape), expand(value, values, escape=escape))
                for name, value in pairs]

    def apply_env(self, pairs: Sequence[tuple[str, str]], *, escape: str = DEFAULT_ESCAPE) -> ArgScope:
        """One ENV line (see `env_pairs`)."""
        scope = self
        for name, value in self.env_pairs(pairs, escape=escape):
            scope = scope.set_env(name, value)
        return scope


def _split_kv(entry: str) -> tuple[str, str]:
    key, _, value = entry.partition("=")
    return key, value


def unconsumed_build_args(build_args: Iterable[str], declared: Iterable[str]) -> list[str]:
    """`--build-arg` names no ARG declared (Docker warns: `[Warning] One or more
    build-args [...] were not consumed`); proxy variables never count."""
    seen = set(declared)
    return sorted({name for name in build_args if name not in seen and name not in PROXY_ARGS})
