"""Image references: Docker's grammar, normalisation and error messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import InvalidParameter
from engine.images.reference import (
    Reference,
    is_full_id,
    is_id_prefix,
    looks_like_id,
    parse,
    parse_repository_and_tag,
)

HEX = "0123456789abcdef" * 4
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize(
    ("text", "full", "familiar", "repository"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "busybox"),
        ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"),
        ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"),
        ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1", "busybox:1",
         "busybox"),
        ("foo/bar", "docker.io/foo/bar:latest", "foo/bar:latest", "foo/bar"),
        ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest",
         "library/a/b"),
        ("myreg:5000/a/b:1", "myreg:5000/a/b:1", "myreg:5000/a/b:1", "myreg:5000/a/b"),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest", "localhost/x"),
        ("localhost:5000/x:y", "localhost:5000/x:y", "localhost:5000/x:y", "localhost:5000/x"),
        ("example.com/ns/name", "example.com/ns/name:latest", "example.com/ns/name:latest",
         "example.com/ns/name"),
        ("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest", "[::1]:5000/x"),
        ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest", "Foo/bar"),  # uppercase host
        ("a__b.c-d---e", "docker.io/library/a__b.c-d---e:latest", "a__b.c-d---e:latest",
         "a__b.c-d---e"),
        ("busybox:Latest_1.x-y", "docker.io/library/busybox:Latest_1.x-y",
         "busybox:Latest_1.x-y", "busybox"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}",
         "busybox"),
        (f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}",
         f"busybox:1@{DIGEST}", "busybox"),
    ],
)
def test_valid_references(text: str, full: str, familiar: str, repository: str) -> None:
    ref = parse(text)
    assert ref.full_name() == full
    assert ref.familiar() == familiar
    assert ref.repository == repository
    assert str(ref) == full


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid reference format"),
        ("busybox:", "invalid reference format"),
        (":tag", "invalid reference format"),
        ("a___b", "invalid reference format"),
        ("-abc", "invalid reference format"),
        ("abc-", "invalid reference format"),
        ("a//b", "invalid reference format"),
        ("busybox:" + "t" * 129, "invalid reference format"),
        ("busybox:-tag", "invalid reference format"),
        ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
        ("foo/Bar:1", "invalid reference format: repository name (foo/Bar) must be lowercase"),
        ("myreg:5000/A", "invalid reference format: repository name (A) must be lowercase"),
        (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
        ("busybox@sha256:abc", "invalid reference format"),
        (f"busybox@md5:{'a' * 32}", "unsupported digest algorithm"),
        (f"busybox@sha256:{HEX.upper()}", "invalid checksum digest format"),
        (f"busybox@sha256:{HEX}ab", "invalid checksum digest length"),
        ("a/" * 130 + "b", "repository name must not be more than 255 characters"),
        ("exa mple", "invalid reference format"),
        ("café", "invalid reference format"),
        ("busybox\n", "invalid reference format"),
        ("busybox:latest\n", "invalid reference format"),
    ],
)
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse(text)
    assert info.value.message == message


def test_no_default_tag_keeps_name_only() -> None:
    ref = parse("busybox", default_tag=False)
    assert ref.tag is None
    assert ref.familiar() == "busybox"
    assert parse(f"busybox@{DIGEST}").tag is None


def test_repository_and_tag() -> None:
    assert parse_repository_and_tag("busybox").familiar() == "busybox:latest"
    assert parse_repository_and_tag("busybox:1", "2").familiar() == "busybox:2"
    assert parse_repository_and_tag("myreg:5000/x", "v1").full_name() == "myreg:5000/x:v1"
    with pytest.raises(InvalidParameter, match="invalid tag format"):
        parse_repository_and_tag("busybox", "bad tag")
    with pytest.raises(InvalidParameter, match="cannot import digest reference"):
        parse_repository_and_tag(f"busybox@{DIGEST}")
    with pytest.raises(InvalidParameter, match="at least one component"):
        parse_repository_and_tag("")


def test_id_helpers() -> None:
    assert looks_like_id("abc123")
    assert looks_like_id("sha256:abc")
    assert looks_like_id(HEX)
    assert not looks_like_id("busybox")
    assert not looks_like_id("ABC")
    assert not looks_like_id(HEX + "0")
    assert not looks_like_id("abc\n")
    assert is_full_id(HEX)
    assert is_full_id(DIGEST)
    assert not is_full_id(HEX[:12])
    assert is_id_prefix(DIGEST, HEX[:5])
    assert is_id_prefix(DIGEST, "sha256:" + HEX[:5])
    assert not is_id_prefix(DIGEST, "busybox")


# property-based ------------------------------------------------------------------

_alnum = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_sep = st.sampled_from([".", "_", "__", "-", "--"])
_component = st.builds(
    lambda first, rest: first + "".join(s + a for s, a in rest),
    _alnum,
    st.lists(st.tuples(_sep, _alnum), max_size=2),
)
_path = st.lists(_component, min_size=1, max_size=3).map("/".join)
_tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
_domain = st.sampled_from(["", "docker.io/", "myreg:5000/", "localhost/", "a.b.c/", "[::1]/"])


@given(domain=_domain, path=_path, tag=st.none() | _tag)
def test_round_trip(domain: str, path: str, tag: str | None) -> None:
    text = domain + path + (f":{tag}" if tag else "")
    if len(text) > 200 or (not domain and len(path) == 64 and all(c in HEX for c in path)):
        return
    first = path.split("/")[0]
    if domain in ("", "docker.io/") and "/" in path and ("." in first or first == "localhost"):
        return  # the first component reads as a registry host, in Docker too
    ref = parse(text)
    assert ref.tag == (tag or "latest")
    # the full and familiar forms parse back to the same reference
    assert parse(ref.full_name()) == ref
    assert parse(ref.familiar()) == ref
    assert parse(ref.repository, default_tag=False).name_only() == ref.name_only()


@given(st.text(max_size=40))
def test_parse_never_crashes(text: str) -> None:
    ref: Reference | None = None
    message = ""
    try:
        ref = parse(text)
    except InvalidParameter as exc:
        message = exc.message
    if ref is None:
        assert message
    else:
        assert parse(ref.full_name()) == ref


@given(name=_component, rest=st.lists(_component, max_size=2))
def test_uppercase_is_refused(name: str, rest: list[str]) -> None:
    if name.upper() == name:
        return
    with pytest.raises(InvalidParameter, match="must be lowercase"):
        parse(name.upper())
    # below a lowercase namespace, an uppercase component is refused too
    with pytest.raises(InvalidParameter, match="must be lowercase"):
        parse("/".join(["ns", *rest, name.upper()]))
