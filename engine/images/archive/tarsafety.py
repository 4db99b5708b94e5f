"""Reading an uploaded archive without trusting it.

`tarfile` only parses: members are indexed by offset and read by offset, never
extracted, so nothing is written under a name the archive chose. Absolute or `..`
names, links leaving the archive, hard links, devices, sizes beyond the end, too many
members and oversized JSON all refuse the whole archive (400).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
from pathlib import Path
from typing import Any

import attrs

from engine.images.archive.formats import blob_name, invalid_archive

#: manifest.json, index.json, manifests and configs: real ones are kilobytes.
MAX_JSON_BYTES = 8 * 1024 * 1024
#: an archive holds a few members per layer; a million headers is an attack on memory.
MAX_MEMBERS = 100_000
MAX_LINK_HOPS = 16

_METADATA = ("manifest.json", "index.json", "oci-layout", "repositories")


@attrs.frozen
class Entry:
    """A regular file inside the spooled archive: where its bytes are."""

    name: str
    offset: int
    size: int


def _member_name(raw: str) -> str:
    """A member name relative to the archive root; absolute and `..` names are refused."""
    if raw.startswith("/"):
        raise invalid_archive(f"member {raw!r} has an absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise invalid_archive(f"member {raw!r} climbs out of the archive with '..'")
    return "/".join(parts)


def _reference_path(text: str, what: str) -> str:
    """A path named inside the archive's JSON: relative, and staying inside."""
    if not text or text.startswith("/"):
        raise invalid_archive(f"{what} names {text!r}, outside the archive")
    cleaned = posixpath.normpath(text)
    if cleaned == ".." or cleaned.startswith("../"):
        raise invalid_archive(f"{what} names {text!r}, outside the archive")
    return cleaned


def _link_target(name: str, target: str) -> str:
    """Where an in-archive symlink points, as a member name (older docker save wrote
    links between layers shared by two images); a link leaving the archive is refused."""
    if not target or target.startswith("/"):
        raise invalid_archive(f"member {name!r} is a link to {target!r}, outside the archive")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if joined == ".." or joined.startswith("../"):
        raise invalid_archive(f"member {name!r} is a link to {target!r}, outside the archive")
    return joined


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise invalid_archive(f"{what} is not valid JSON: {exc}") from None


@attrs.define
class Archive:
    """The members of a spooled archive, by name; reads go by offset, never by path."""

    path: Path
    files: dict[str, Entry]
    links: dict[str, str]

    def has(self, name: str) -> bool:
        return name in self.files or name in self.links

    def locate(self, text: str, what: str) -> Entry:
        """The regular file a JSON-given path names, following in-archive symlinks."""
        name = _reference_path(text, what)
        for _ in range(MAX_LINK_HOPS):
            entry = self.files.get(name)
            if entry is not None:
                return entry
            target = self.links.get(name)
            if target is None:
                raise invalid_archive(f"{what} names {text!r}, which is not in the archive")
            name = target
        raise invalid_archive(f"{what} names {text!r}: too many levels of symbolic links")

    def read(self, entry: Entry, what: str, limit: int = MAX_JSON_BYTES) -> bytes:
        if entry.size > limit:
            raise invalid_archive(
                f"{what} ({entry.name}) is too large: {entry.size} bytes, at most {limit} accepted"
            )
        with open(self.path, "rb") as f:
            f.seek(entry.offset)
            data = f.read(entry.size)
        if len(data) != entry.size:
            raise invalid_archive(f"member {entry.name!r} is truncated")
        return data

    def metadata(self, name: str) -> Any:
        """manifest.json or index.json: a regular file at the top, as JSON."""
        entry = self.files.get(name)
        if entry is None:
            raise invalid_archive(f"{name} is a link; it must be a regular file")
        return parse_json(self.read(entry, name), name)

    def blob(self, digest: str, size: int | None, what: str) -> Entry:
        name = blob_name(digest)
        if not self.has(name):
            raise invalid_archive(f"blob {digest} ({what}) is missing")
        entry = self.locate(name, what)
        if size is not None and entry.size != size:
            raise invalid_archive(f"blob {digest} is {entry.size} bytes, its descriptor says {size}")
        return entry

    def read_blob(self, digest: str, size: int | None, what: str) -> bytes:
        data = self.read(self.blob(digest, size, what), what)
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if got != digest:
            raise invalid_archive(f"blob {digest} ({what}) does not match its digest (got {got})")
        return data


def scan(path: Path) -> Archive:
    """Index the archive's members; anything that is no plain file or directory, or
    whose name or size cannot be trusted, refuses the whole archive."""
    files: dict[str, Entry] = {}
    links: dict[str, str] = {}
    end = path.stat().st_size
    count = 0
    try:
        with tarfile.open(path, "r:") as tar:
            while (info := tar.next()) is not None:
                count += 1
                if count > MAX_MEMBERS:
                    raise invalid_archive(f"more than {MAX_MEMBERS} members")
                name = _member_name(info.name)
                if info.isdir():
                    continue
                if not name:
                    raise invalid_archive(f"member {info.name!r} has no name")
                if name in files or name in links:
                    raise invalid_archive(f"member {name!r} appears twice")
                if info.issym():
                    links[name] = _link_target(name, info.linkname)
                elif info.islnk():
                    raise invalid_archive(f"member {name!r} is a hard link; image archives hold none")
                elif not info.isreg() or info.issparse():
                    raise invalid_archive(f"member {name!r} is not a regular file or directory")
                elif info.offset_data + info.size > end:
                    raise invalid_archive(
                        f"member {name!r} says it holds {info.size} bytes, but the archive "
                        "ends before them"
                    )
                else:
                    files[name] = Entry(name, info.offset_data, info.size)
    except tarfile.TarError as exc:
        raise invalid_archive(f"not a readable tar archive ({exc})") from None
    for name in _METADATA:
        if name in links:
            raise invalid_archive(f"{name} is a link; it must be a regular file")
    return Archive(path, files, links)


__all__ = ["MAX_JSON_BYTES", "MAX_LINK_HOPS", "MAX_MEMBERS", "Archive", "Entry", "parse_json", "scan"]
