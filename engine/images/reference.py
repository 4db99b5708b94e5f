"""Docker image references: `[registry[:port]/][namespace/]name[:tag][@digest]`.

Clients type short names (`busybox`), the store keys on full ones
(`docker.io/library/busybox:latest`), and error messages quote the short form back.
The grammar and the messages follow Docker's (distribution/reference), because the
docker CLI, compose and the SDKs send names the way Docker accepts them and match on
its wording.
"""

from __future__ import annotations

import re

import attrs

from engine.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# grammar pieces (ASCII only: Python's \w would also take non-ASCII letters)
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_DOMAIN_RE = re.compile(rf"^{_DOMAIN}\Z")
_REMAINDER_RE = re.compile(
    rf"^(?P<path>{_REMOTE_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?\Z"
)
_TAG_RE = re.compile(rf"^{_TAG}\Z")
_FULL_HEX_RE = re.compile(r"^[a-f0-9]{64}\Z")
_ID_RE = re.compile(r"^(?:sha256:)?[a-f0-9]{1,64}\Z")
_FULL_ID_RE = re.compile(r"^(?:sha256:)?[a-f0-9]{64}\Z")

_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


@attrs.frozen
class Reference:
    """A normalised image reference. `path` is the repository path inside `domain`.

    `tag` is None only for a digest-only reference (`name@sha256:…`).
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name: `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    @property
    def repository(self) -> str:
        """The familiar repository name without tag or digest: `busybox`, `myreg:5000/a/b`."""
        if self.domain == DEFAULT_DOMAIN:
            short = self.path.removeprefix(OFFICIAL_PREFIX)
            return short if short != self.path and "/" not in short else self.path
        return self.name

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def familiar(self) -> str:
        """What users type and Docker prints: `busybox:latest`, `myreg:5000/a/b:1`."""
        return self.repository + self._suffix()

    def full_name(self) -> str:
        """The canonical string the store keys on: `docker.io/library/busybox:latest`."""
        return self.name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """This repository with `tag` (and no digest); the tag is validated."""
        if not _TAG_RE.match(tag):
            raise InvalidParameter("invalid tag format")
        return Reference(self.domain, self.path, tag, None)

    def name_only(self) -> Reference:
        return Reference(self.domain, self.path, None, None)

    def __str__(self) -> str:
        return self.full_name()


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's rule for whether the first component is a registry host."""
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_PREFIX + name
    if first == "localhost":
        domain, remainder = first, rest
    elif first == LEGACY_DEFAULT_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, rest
    elif "." in first or ":" in first or first.lower() != first:
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def _check_digest(digest: str) -> None:
    algorithm, _, hexpart = digest.partition(":")
    expected = _DIGEST_LENGTHS.get(algorithm)
    if expected is None:
        raise InvalidParameter("unsupported digest algorithm")
    if len(hexpart) != expected:
        raise InvalidParameter("invalid checksum digest length")
    if hexpart != hexpart.lower():
        raise InvalidParameter("invalid checksum digest format")


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference the way Docker's `ParseNormalizedNamed` does.

    With `default_tag` a name without tag or digest gets `:latest`.
    Raises InvalidParameter with Docker's wording.
    """
    if _FULL_HEX_RE.match(text):
        raise InvalidParameter(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_domain(text)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidParameter(
            f"invalid reference format: repository name ({remote}) must be lowercase"
        )
    m = _REMAINDER_RE.match(remainder)
    if not _DOMAIN_RE.match(domain) or m is None:
        raise InvalidParameter("invalid reference format")
    path = m.group("path")
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidParameter(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    tag = m.group("tag")
    digest = m.group("digest")
    if digest is not None:
        _check_digest(digest)
    if default_tag and tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def parse_repository_and_tag(repo: str, tag: str = "") -> Reference:
    """`repo` and an optional separate `tag`, as `POST /images/{name}/tag` and imports get them.

    A tag in `tag` replaces one inside `repo`; digests are refused (Docker: "cannot
    import digest reference").
    """
    if not repo:
        raise InvalidParameter("repository name must have at least one component")
    ref = parse(repo, default_tag=False)
    if ref.digest is not None:
        raise InvalidParameter("cannot import digest reference")
    if tag:
        return ref.with_tag(tag)
    return ref if ref.tag is not None else ref.with_tag(DEFAULT_TAG)


def looks_like_id(text: str) -> bool:
    """Whether `text` can be an image ID or ID prefix (lowercase hex, optional `sha256:`)."""
    return bool(_ID_RE.match(text))


def is_full_id(text: str) -> bool:
    """A complete ID: 64 hex digits, with or without `sha256:`."""
    return bool(_FULL_ID_RE.match(text))


def normalize_id(text: str) -> str:
    """`<hex>` or `sha256:<hex>` → `sha256:<hex>` (no validation beyond the prefix)."""
    return text if text.startswith("sha256:") else f"sha256:{text}"


def is_id_prefix(image_id: str, candidate: str) -> bool:
    """Docker's test of whether a name given by the user was (a prefix of) this ID."""
    if image_id.startswith(candidate):
        return True
    _, sep, hexpart = image_id.partition(":")
    return bool(sep) and hexpart.startswith(candidate)


__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "Reference",
    "is_full_id",
    "is_id_prefix",
    "looks_like_id",
    "normalize_id",
    "parse",
    "parse_repository_and_tag",
]
