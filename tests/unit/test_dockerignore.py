""".dockerignore rules: Docker's documented examples, `!` exceptions, `**`, and when a
walker may skip a directory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.build.dockerignore import DockerIgnore, DockerIgnoreError, clean_path, read_patterns
from engine.errors import InvalidParameter


def ignore(*lines: str) -> DockerIgnore:
    return DockerIgnore.parse("\n".join(lines))


def test_read_patterns_normalises_lines() -> None:
    text = (
        "\ufeff# comment\n"
        "\n"
        "   \n"
        "  spaced/  \r\n"
        "./local\n"
        "/rooted/path\n"
        "a//b/../c\n"
        "! keep.me\n"
        "!/rooted/keep\n"
        "  #not-a-comment\n"
        "/\n"
        "\\#literal\n"
    )
    assert read_patterns(text) == [
        "spaced",
        "local",
        "rooted/path",
        "a/c",
        "!keep.me",
        "!rooted/keep",
        "#not-a-comment",
        "/",
        "\\#literal",
    ]
    assert read_patterns(b"a\nb") == ["a", "b"]


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("", "."),
        (".", "."),
        ("a/./b/", "a/b"),
        ("../a", "../a"),
        ("a/../..", ".."),
        ("//a", "/a"),
        ("/..", "/"),
    ],
)
def test_clean_path_is_go_filepath_clean(path: str, cleaned: str) -> None:
    assert clean_path(path) == cleaned


# Docker's documentation: "*/temp*", "*/*/temp*", "temp?", then "**" and exceptions
DOCS = ignore("# comment", "*/temp*", "*/*/temp*", "temp?")


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("somedir/temporary.txt", True),
        ("somedir/temp", True),
        ("temp", False),  # */temp* needs a directory level
        ("somedir/subdir/temporary.txt", True),
        ("a/b/temp/deeper/file", True),  # a matching directory takes everything below it
        ("tempa", True),
        ("tempb/inside", True),
        ("temp12", False),
        ("other/file", False),
        (".", False),
    ],
)
def test_documented_examples(path: str, excluded: bool) -> None:
    assert DOCS.excludes(path) is excluded


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["**/*.go"], "main.go", True),
        (["**/*.go"], "cmd/tool/main.go", True),
        (["**/*.go"], "main.gox", False),
        (["**/node_modules"], "node_modules/x/y", True),
        (["**/node_modules"], "web/node_modules/x", True),
        (["vendor/**"], "vendor/a/b", True),
        (["vendor/**"], "vendor", False),
        (["a/**/b"], "a/b", True),
        (["a/**/b"], "a/x/y/b", True),
        (["a/**/b"], "a/x/y/bb", False),
        (["**"], "anything/at/all", True),
        (["**.log"], "logs/app.log", True),  # Docker's suffix rule for `**` + plain text
        (["*.md"], "README.md", True),
        (["*.md"], "docs/guide.md", False),
        (["[a-c]*.txt"], "b1.txt", True),
        (["[a-c]*.txt"], "d1.txt", False),
        (["[^a]x"], "bx", True),
        (["\\*star"], "*star", True),
        (["\\*star"], "xstar", False),
        (["data?"], "data/", False),
        (["a.b"], "aXb", False),
        (["./build", "/dist/"], "build/out", True),
        (["./build", "/dist/"], "dist/x", True),
    ],
)
def test_patterns(patterns: list[str], path: str, excluded: bool) -> None:
    assert DockerIgnore.parse("\n".join(patterns)).excludes(path) is excluded


def test_exceptions_later_rules_win() -> None:
    # the documented README example: all markdown but README.md
    rules = ignore("*.md", "!README.md")
    assert rules.excludes("CHANGES.md")
    assert not rules.excludes("README.md")
    # order matters: the exception first, then a broader exclusion takes it away again
    rules = ignore("*.md", "!README*.md", "README-secret.md")
    assert not rules.excludes("README-public.md")
    assert rules.excludes("README-secret.md")
    rules = ignore("*.md", "README-secret.md", "!README*.md")
    assert not rules.excludes("README-secret.md")


def test_exception_inside_excluded_directory() -> None:
    rules = ignore("docs", "!docs/keep.txt")
    assert rules.excludes("docs")
    assert rules.excludes("docs/other.txt")
    assert not rules.excludes("docs/keep.txt")
    # excluding everything, then bringing one tree back
    rules = ignore("*", "!src", "src/**/*.tmp")
    assert rules.excludes("Makefile")
    assert not rules.excludes("src/main.c")
    assert rules.excludes("src/a/b.tmp")


def test_when_a_walker_may_skip_a_directory() -> None:
    rules = ignore("node_modules", "build", "!build/keep", "cache", "!**/*.go", "logs", "!*.txt")
    assert rules.can_skip_directory("node_modules") is False  # `!**/*.go` could match below it
    assert ignore("node_modules").can_skip_directory("node_modules")
    assert ignore("node_modules").can_skip_directory("a") is False  # not excluded at all
    assert rules.may_reinclude_below("build")
    exact = ignore("build", "!build/keep", "cache")
    assert exact.may_reinclude_below("build")
    assert not exact.may_reinclude_below("cache")
    assert exact.can_skip_directory("cache")
    # an exception before the excluding rule cannot bring anything back
    assert ignore("!keep/x", "keep").can_skip_directory("keep")
    # segment-wise: `!a/*/c` can match below a/b, not below z/b
    seg = ignore("*", "!a/*/c")
    assert seg.may_reinclude_below("a")
    assert seg.may_reinclude_below("a/b")
    assert not seg.may_reinclude_below("z")
    assert not seg.may_reinclude_below("a/b/c/d") or not seg.excludes("a/b/c/d")
    # an exception on a top-level name pattern cannot re-include below other directories
    assert not ignore("logs", "!*.txt").may_reinclude_below("logs")
    assert ignore("logs", "!*.txt").can_skip_directory("logs")


def test_build_files_are_sent_then_dropped() -> None:
    rules = ignore("*", "!app")
    sent = rules.with_build_files_kept("Dockerfile")
    assert not sent.excludes("Dockerfile")
    assert not sent.excludes(".dockerignore")
    assert sent.excludes("other")
    assert rules.build_files_to_drop("Dockerfile") == [".dockerignore", "Dockerfile"]
    nested = ignore("docker")
    assert nested.with_build_files_kept("docker/Dockerfile.dev").may_reinclude_below("docker")
    assert nested.build_files_to_drop("./docker/Dockerfile.dev") == ["docker/Dockerfile.dev"]
    assert ignore("*.log").build_files_to_drop("Dockerfile") == []
    assert ignore("*.log").with_build_files_kept("Dockerfile") == ignore("*.log")


@pytest.mark.parametrize("text", ["!", "  !  ", "!/", "foo\\", "[abc"])
def test_refused_patterns(text: str) -> None:
    with pytest.raises(DockerIgnoreError) as caught:
        DockerIgnore.parse(text)
    assert isinstance(caught.value, InvalidParameter)


segment = st.from_regex(r"[a-z0-9_][a-z0-9_.-]{0,6}", fullmatch=True).filter(lambda s: s not in (".", ".."))
paths = st.lists(segment, min_size=1, max_size=4).map("/".join)


@given(paths, st.lists(segment, max_size=3))
def test_excluded_directory_takes_everything_below(directory: str, below: list[str]) -> None:
    rules = ignore(directory)
    path = "/".join([directory, *below])
    assert rules.excludes(path)
    assert not ignore(directory, "!" + path).excludes(path)
    assert ignore(directory, "!" + path, path).excludes(path)


@given(paths, paths)
def test_skipping_is_safe(directory: str, tail: str) -> None:
    # whenever a walker may skip a directory, nothing below it is re-included
    rules = ignore(directory.split("/")[0], "!**/keep", "!" + directory + "/x", "!*/y")
    if rules.can_skip_directory(directory):
        assert rules.excludes(directory + "/" + tail)


vocabulary = st.sampled_from(
    ["a", "a/b", "*", "*/c", "a/*/c", "**/c", "c", "b*", "a/**", "?", "a/b/c", "**", "*/*/d", "[ab]"]
)
rule_lists = st.lists(st.tuples(st.booleans(), vocabulary), min_size=1, max_size=5)
letters = st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4).map("/".join)


@given(rule_lists, letters, letters)
def test_skipping_is_safe_for_any_rules(rules: list[tuple[bool, str]], directory: str, tail: str) -> None:
    ignored = DockerIgnore.from_patterns(("!" if exception else "") + p for exception, p in rules)
    if ignored.can_skip_directory(directory):
        assert ignored.excludes(directory + "/" + tail)
