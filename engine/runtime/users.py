"""Who the container's process runs as: Docker's `--user` and `--group-add` rules.

The OCI runtime takes numbers only, so names are looked up here, in the image's own
`/etc/passwd` and `/etc/group`, the way Docker (runc's `user` package) does:

- `""` is root: uid 0, gid 0 and the groups that list root as a member;
- `name` / `uid` take the primary gid and home from passwd, and supplementary groups
  from the group file's member lists; a numeric uid with no passwd entry is fine
  (gid 0, home `/`), a name with none is an error;
- `user:group` sets the primary gid explicitly and then no supplementary groups are
  looked up (`--group-add` still applies).

The root filesystem is untrusted: `/etc/passwd` may be a symlink to `/etc/passwd` on
the host, a FIFO, or a device. The files are found with `resolve_in_root`, opened
without following a final symlink, and read only if they are regular files, up to a
size cap. The lookups themselves are pure (`lookup_user`); `resolve_user` blocks on
file I/O and is meant for `trio.to_thread.run_sync`.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

import attrs

from engine.errors import InvalidParameter
from engine.securejoin import ScopeError, resolve_in_root

MAX_ID = 2**31 - 1
# Large enough for any real passwd/group file, small enough that a hostile image
# can't make the daemon read gigabytes.
MAX_FILE_BYTES = 4 * 1024 * 1024

_NUMERIC = re.compile(r"[+-]?[0-9]+")


@attrs.frozen
class ProcessUser:
    """The numeric identity for OCI `process.user`, plus the home directory for `HOME`."""

    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


@attrs.frozen
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@attrs.frozen
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def parse_passwd(text: str) -> list[PasswdEntry]:
    """Entries of a passwd file; malformed lines (NIS `+`, comments, junk) are skipped."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 4:
            continue
        uid, gid = _as_int(fields[2]), _as_int(fields[3])
        if uid is None or gid is None:
            continue
        home = fields[5] if len(fields) > 5 else ""
        entries.append(PasswdEntry(fields[0], uid, gid, home))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    """Entries of a group file; malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 3:
            continue
        gid = _as_int(fields[2])
        if gid is None:
            continue
        listed = fields[3].split(",") if len(fields) > 3 else []
        members = tuple(m.strip() for m in listed if m.strip())
        entries.append(GroupEntry(fields[0], gid, members))
    return entries


def _as_int(text: str) -> int | None:
    text = text.strip()
    return int(text) if _NUMERIC.fullmatch(text) else None


def _checked_id(value: int) -> int:
    if not 0 <= value <= MAX_ID:
        raise InvalidParameter(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def lookup_user(
    user: str,
    passwd: Sequence[PasswdEntry] | None,
    groups: Sequence[GroupEntry] | None,
    group_add: Sequence[str] = (),
) -> ProcessUser:
    """Resolve `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`, `uid:groupname`).

    `passwd` / `groups` are None when the image has no such file. Pure. Errors are
    `InvalidParameter` with Docker's wording, because users search for that text.
    """
    user_part, _, group_part = user.partition(":")
    group_part = group_part.split(":", 1)[0]
    uid_arg = _as_int(user_part)
    gid_arg = _as_int(group_part)

    uid, gid, home = 0, 0, "/"
    matched_name = ""
    entries = list(passwd or ())
    if user_part == "":
        match = next((e for e in entries if e.uid == 0), None)
    elif uid_arg is not None:
        match = next((e for e in entries if e.uid == uid_arg), None)
    else:
        match = next((e for e in entries if e.name == user_part), None)
    if match is not None:
        matched_name, uid, gid, home = match.name, match.uid, match.gid, match.home or "/"
    elif user_part != "":
        if uid_arg is None:
            raise InvalidParameter(
                f"unable to find user {user_part}: no matching entries in passwd file")
        uid = _checked_id(uid_arg)

    all_groups = list(groups or ())
    supplementary: list[int] = []
    if group_part:
        if gid_arg is not None:
            found = next((g for g in all_groups if g.gid == gid_arg), None)
        else:
            found = next((g for g in all_groups if g.name == group_part), None)
        if found is not None:
            gid = found.gid
        elif gid_arg is None:
            raise InvalidParameter(
                f"unable to find group {group_part}: no matching entries in group file")
        else:
            gid = _checked_id(gid_arg)
    elif matched_name:
        supplementary = [g.gid for g in all_groups if matched_name in g.members]

    added = [_group_add_gid(name, all_groups) for name in group_add]
    additional: list[int] = []
    for g in [gid, *supplementary, *added]:
        if g not in additional:
            additional.append(g)
    return ProcessUser(uid=uid, gid=gid, additional_gids=tuple(additional), home=home)


def _group_add_gid(name: str, groups: Sequence[GroupEntry]) -> int:
    """A `--group-add` entry: a group name or gid from the image, or any numeric gid."""
    for g in groups:
        if g.name == name or str(g.gid) == name:
            return g.gid
    numeric = _as_int(name)
    if numeric is None:
        raise InvalidParameter(f"Unable to find group {name}: no matching entries in group file")
    return _checked_id(numeric)


def read_rootfs_file(rootfs: Path, path: str) -> str | None:
    """The text of `path` as the container would see it, or None if absent or not a file.

    Blocking. Symlinks are resolved inside `rootfs`; the final component is opened
    with O_NOFOLLOW and must be a regular file, so a hostile image can't point us at a
    host file, a FIFO that blocks for ever, or a device that never ends.
    """
    try:
        host_path = resolve_in_root(rootfs, path)
    except ScopeError as exc:
        raise InvalidParameter(f"unable to read {path} in the container: {exc}") from None
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(host_path, flags)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink appeared after resolution: treat as absent
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = b""
        while len(data) <= MAX_FILE_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
        if len(data) > MAX_FILE_BYTES:
            raise InvalidParameter(f"{path} in the container is larger than {MAX_FILE_BYTES} bytes")
        return data.decode("utf-8", errors="replace")
    finally:
        os.close(fd)


def resolve_user(rootfs: Path, user: str, group_add: Sequence[str] = ()) -> ProcessUser:
    """Look `user` and `group_add` up in the container's own passwd and group files.

    Blocking (file I/O): call through `trio.to_thread.run_sync`.
    """
    passwd_text = read_rootfs_file(rootfs, "/etc/passwd")
    group_text = read_rootfs_file(rootfs, "/etc/group")
    passwd = parse_passwd(passwd_text) if passwd_text is not None else None
    groups = parse_group(group_text) if group_text is not None else None
    return lookup_user(user, passwd, groups, group_add)
