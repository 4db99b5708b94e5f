"""Variable expansion in Dockerfile arguments: examples, properties, and ARG/ENV scoping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.dockerfile.substitution import (
    PROXY_ARGS,
    ArgScope,
    SubstitutionError,
    expand,
    expand_words,
    unconsumed_build_args,
)
from engine.errors import InvalidParameter

ENV = {
    "PWD": "/home",
    "SHELL": "bash",
    "NULL": "",
    "SPACED": "a  b c",
    "PATHLIKE": "/usr/local/bin/app.tar.gz",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("$PWD", "/home"),
        ("he$PWD", "he/home"),
        ("${PWD}x", "/homex"),
        ("$UNSET.x", ".x"),
        ("$.", "$."),
        ("a$", "a$"),
        ("$1x", "x"),
        ("$$", ""),
        ("he\\$PWD", "he$PWD"),
        ("he\\\\$PWD", "he\\/home"),
        ("\\${}", "${}"),
        ("abc\\tdef", "abctdef"),
        ("trailing\\", "trailing"),
        ("'$PWD'", "$PWD"),
        ("'\\$PWD'", "\\$PWD"),
        ('"$PWD"', "/home"),
        ('"he\\$PWD"', "he$PWD"),
        ('"abc\\tdef"', "abc\\tdef"),
        ('"a\\"b"', 'a"b'),
        ("\"he'$PWD'\"", "he'/home'"),
        ("he'll'o", "hello"),
        ("${UNSET:-000}", "000"),
        ("${NULL:-000}", "000"),
        ("${NULL-000}", ""),
        ("${UNSET-000}", "000"),
        ("${PWD:-000}", "/home"),
        ("${UNSET:-${PWD:-yyy}}", "/home"),
        ('${UNSET:-"a b"}', "a b"),
        ("${UNSET:-\\$PWD:}", "$PWD:"),
        ("${PWD:+${SHELL}}", "bash"),
        ("${NULL:+x}", ""),
        ("${NULL+x}", "x"),
        ("${UNSET+x}", ""),
        ("${PWD?}", "/home"),
        ("${NULL?}", ""),
        ("${aaa}}", "}"),
        ("${PATHLIKE#*/}", "usr/local/bin/app.tar.gz"),
        ("${PATHLIKE##*/}", "app.tar.gz"),
        ("${PATHLIKE%.*}", "/usr/local/bin/app.tar"),
        ("${PATHLIKE%%.*}", "/usr/local/bin/app"),
        ("${PATHLIKE#/usr}", "/local/bin/app.tar.gz"),
        ("${PATHLIKE#nomatch}", "/usr/local/bin/app.tar.gz"),
        ("${PATHLIKE/local/opt}", "/usr/opt/bin/app.tar.gz"),
        ("${PATHLIKE//a/A}", "/usr/locAl/bin/App.tAr.gz"),
        ("${PATHLIKE/\\//_}", "_usr/local/bin/app.tar.gz"),
        ("${UNSET#x}", ""),
        ("안녕$PWD", "안녕/home"),
    ],
)
def test_expand_examples(text: str, expected: str) -> None:
    assert expand(text, ENV) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${}", "syntax error: bad substitution"),
        ("${:-x}", "syntax error: bad substitution"),
        ("${{a}", "syntax error: bad substitution"),
        ("${PWD", "syntax error: missing '}'"),
        ("${", "syntax error: missing '}'"),
        ("${UNSET:-x", "syntax error: missing '}'"),
        ("${UNSET:-bb ${PWD}", "syntax error: missing '}'"),
        ("${PWD:=x}", "unsupported modifier (:=) in substitution"),
        ("${.}", "unsupported modifier (.) in substitution"),
        ("${PWD:#x}", "unsupported modifier (:#) in substitution"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("${NULL:?}", "NULL: is not allowed to be empty"),
        ("${UNSET:?set it please}", "UNSET: set it please"),
        ("'open", "unexpected end of statement while looking for matching single-quote"),
        ('"open', "unexpected end of statement while looking for matching double-quote"),
        ("${PWD#\\a}", "invalid pattern (\\a) in substitution: invalid escape '\\a'"),
        ("${PWD/x}", "syntax error: missing '/' in ${}"),
    ],
)
def test_expand_errors(text: str, message: str) -> None:
    with pytest.raises(SubstitutionError) as caught:
        expand(text, ENV)
    assert str(caught.value).endswith(": " + message)
    assert str(caught.value).startswith("failed to process ")
    assert isinstance(caught.value, InvalidParameter)


def test_expand_words_splits_expansions_not_quotes() -> None:
    assert expand_words("80 $PORTS", {"PORTS": "443  8080/udp"}) == ["80", "443", "8080/udp"]
    assert expand_words('"$SPACED" x', ENV) == ["a  b c", "x"]
    assert expand_words("'a b' \"\" c\\ d", ENV) == ["a b", "c d"]
    assert expand_words("  ", ENV) == []
    assert expand("80 $PORTS", {"PORTS": "443  8080"}) == "80 443  8080"


def test_backtick_escape() -> None:
    assert expand("c:\\dir`$PWD", ENV, escape="`") == "c:\\dir$PWD"
    assert expand('"a`"b"', ENV, escape="`") == 'a"b'


# -- properties --------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
# plain text: nothing the lexer treats specially
plain = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="$'\"\\`{}"), max_size=20)
word_chars = st.characters(categories=["L", "Nd"], include_characters="_-./:@")
plain_word = st.text(alphabet=word_chars, min_size=1, max_size=10)
values = st.text(max_size=20)


@given(names, st.one_of(st.none(), values), plain)
def test_colon_dash_default(name: str, value: str | None, default: str) -> None:
    env = {} if value is None else {name: value}
    expected = value if value else default
    assert expand(f"${{{name}:-{default}}}", env) == expected


@given(names, st.one_of(st.none(), values), plain)
def test_dash_default_only_when_unset(name: str, value: str | None, default: str) -> None:
    env = {} if value is None else {name: value}
    assert expand(f"${{{name}-{default}}}", env) == (default if value is None else value)


@given(names, st.one_of(st.none(), values), plain)
def test_colon_plus_alternative(name: str, value: str | None, alternative: str) -> None:
    env = {} if value is None else {name: value}
    assert expand(f"${{{name}:+{alternative}}}", env) == (alternative if value else "")


@given(names, st.one_of(st.none(), values), plain)
def test_plus_alternative_when_set(name: str, value: str | None, alternative: str) -> None:
    env = {} if value is None else {name: value}
    assert expand(f"${{{name}+{alternative}}}", env) == ("" if value is None else alternative)


@given(names, values)
def test_escaped_dollar_is_literal(name: str, value: str) -> None:
    assert expand(f"\\${name}", {name: value}) == f"${name}"
    assert expand(f"\\${{{name}}}", {name: value}) == f"${{{name}}}"
    assert expand(f'"\\${name}"', {name: value}) == f"${name}"


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="$'\"\\")))
def test_text_without_dollar_quotes_or_escapes_is_unchanged(text: str) -> None:
    assert expand(text, ENV) == text


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="'")), values)
def test_single_quotes_expand_nothing(text: str, value: str) -> None:
    assert expand(f"'{text}'", {"X": value}) == text


@given(names, values)
def test_variables_expand_to_their_value(name: str, value: str) -> None:
    assert expand(f"${{{name}}}", {name: value}) == value
    assert expand(f'"${name}"', {name: value}) == value


@given(st.lists(plain_word, max_size=6))
def test_words_of_plain_text(words: list[str]) -> None:
    assert expand_words(" ".join(words), {}) == words


@given(names, st.lists(plain_word, min_size=1, max_size=5))
def test_unquoted_expansion_splits_quoted_does_not(name: str, words: list[str]) -> None:
    value = "  ".join(words)
    assert expand_words(f"${name}", {name: value}) == words
    assert expand_words(f'"${name}"', {name: value}) == [value]


@given(names, plain_word, plain_word)
def test_prefix_and_suffix_removal(name: str, head: str, tail: str) -> None:
    pattern_safe = head.replace("*", "").replace("?", "") or "h"
    env = {name: pattern_safe + tail}
    assert expand(f"${{{name}#{pattern_safe}}}", env) == tail
    assert expand(f"${{{name}%{tail}}}", env) == pattern_safe
    assert expand(f"${{{name}##*}}", env) == ""
    assert expand(f"${{{name}#*}}", env) == env[name]


# -- ARG and ENV scope -------------------------------------------------------------


def test_meta_args_reach_from_only_unless_redeclared() -> None:
    scope = ArgScope(build_args={"VERSION": "2"}).apply_arg([("VERSION", "1"), ("BASE", "alpine")])
    assert scope.meta_values() == {"VERSION": "2", "BASE": "alpine"}
    stage = scope.enter_stage({"PATH": "/bin"})
    assert stage.values() == {"PATH": "/bin"}
    # `ARG BASE` without a default takes the value from before FROM
    stage = stage.apply_arg([("BASE", None), ("VERSION", None)])
    assert stage.values() == {"PATH": "/bin", "BASE": "alpine", "VERSION": "2"}
    # FROM lines still see the meta args, whatever the stage did
    assert stage.meta_values() == {"VERSION": "2", "BASE": "alpine"}


def test_build_args_override_defaults_and_env_overrides_args() -> None:
    stage = ArgScope(build_args={"A": "cli", "C": "cli"}).enter_stage(["HOME=/root"])
    stage = stage.apply_arg([("A", "default"), ("B", "b-default"), ("UNSET", None)])
    assert stage.values() == {"HOME": "/root", "A": "cli", "B": "b-default"}
    stage = stage.apply_env([("B", "from-env")])
    assert stage.values()["B"] == "from-env"
    assert stage.history_args() == ["A=cli"]
    # a build arg that no ARG declares is not in scope
    assert "C" not in stage.values()


def test_one_line_expands_with_the_values_before_it() -> None:
    stage = ArgScope().enter_stage({"abc": "hello"})
    stage = stage.apply_env([("abc", "bye"), ("def", "$abc")])
    assert stage.env == {"abc": "bye", "def": "hello"}
    stage = stage.apply_env([("ghi", "$abc")])
    assert stage.env["ghi"] == "bye"
    stage = stage.apply_arg([("X", "1"), ("Y", "${X:-none}")])
    assert stage.values()["Y"] == "none"


def test_meta_arg_defaults_expand_earlier_meta_args() -> None:
    scope = ArgScope().apply_arg([("REGISTRY", "docker.io")]).apply_arg([("IMAGE", "$REGISTRY/busybox")])
    assert scope.meta_values()["IMAGE"] == "docker.io/busybox"
    assert expand("${IMAGE}:latest", scope.meta_values()) == "docker.io/busybox:latest"


def test_proxy_args_need_no_declaration() -> None:
    stage = ArgScope(build_args={"HTTP_PROXY": "http://proxy:3128", "OTHER": "x"}).enter_stage()
    assert stage.values() == {"HTTP_PROXY": "http://proxy:3128"}
    assert stage.meta_values() == {"HTTP_PROXY": "http://proxy:3128"}
    # undeclared proxies stay out of the history; declared ones go in
    assert stage.history_args() == []
    assert stage.apply_arg([("HTTP_PROXY", None)]).history_args() == ["HTTP_PROXY=http://proxy:3128"]
    assert "no_proxy" in PROXY_ARGS


def test_unconsumed_build_args() -> None:
    assert unconsumed_build_args(["A", "B", "HTTPS_PROXY"], ["A"]) == ["B"]


@given(st.dictionaries(names, values, max_size=4), st.dictionaries(names, values, max_size=4))
def test_env_always_wins_over_args(args: dict[str, str], env: dict[str, str]) -> None:
    stage = ArgScope(build_args=args).enter_stage(env).apply_arg([(k, None) for k in args])
    expected = {k: v for k, v in args.items() if k not in PROXY_ARGS} | {
        k: v for k, v in args.items() if k in PROXY_ARGS
    }
    assert stage.values() == expected | env
