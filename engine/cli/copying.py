"""`moor cp`: files between a container and the host, by docker cp's rules.

The daemon only moves tar streams (`/containers/{id}/archive`); the naming is the
client's job, and docker's rules are subtle enough that scripts depend on them:

* a directory copied into an existing directory lands inside it; into a missing path
  it takes that name; `dir/.` copies the directory's contents;
* a file copied onto an existing directory goes inside it, onto anything else it
  takes the destination's name; a destination ending in `/` must be a directory;
* `-` is a tar stream: from stdin into a container directory, or to stdout.

Paths follow Go's `path/filepath` (what the docker CLI uses), hence the small Go
helpers below. A tar coming from a container is untrusted: before the safe extractor
(`engine.tarball.extract`) unpacks it, members with absolute names or `..`, hard links leaving the
destination, symlinks whose relative target climbs out of it, and a directory
replacing a file (or the reverse) are refused.
"""

from __future__ import annotations

import base64
import io
import json
import os
import posixpath
import stat
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import attrs
import click

from engine.cli.app import App, describe, pass_app
from engine.cli.client import Client, ClientError, Response, quote_path
from engine.cli.errors import CommandError
from engine.cli.formatting import go_quote, human_size
from engine.errors import InvalidParameter
from engine.securejoin import ScopeError, resolve_in_root
from engine.tarball.extract import ExtractRules, extract_tar

# Go's os.FileMode bits in the X-Docker-Container-Path-Stat header
_MODE_DIR = 1 << 31
_MODE_SYMLINK = 1 << 27
_MODE_DEVICE = 1 << 26
_MODE_IRREGULAR = 1 << 19
_STAT_HEADER = "x-docker-container-path-stat"
_CHUNK = 1024 * 1024


class CopyError(Exception):
    """A copy refused or failed; the message is docker's wording."""


# --- Go's path/filepath, as the docker CLI applies it ----------------------------------

def go_clean(path: str) -> str:
    """`filepath.Clean`: like normpath, but `//x` is `/x` and `` is `.`."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("/") else cleaned


def go_base(path: str) -> str:
    """`filepath.Base`: the last element, trailing slashes ignored (`/` for the root)."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    if not stripped:
        return "/"
    return stripped.rsplit("/", 1)[-1]


def go_dir(path: str) -> str:
    """`filepath.Dir`: everything before the last slash, cleaned."""
    return go_clean(path[: path.rfind("/") + 1])


def go_join(*parts: str) -> str:
    """`filepath.Join`: the non-empty parts joined and cleaned."""
    joined = "/".join(p for p in parts if p)
    return go_clean(joined) if joined else ""


def has_trailing_separator(path: str) -> bool:
    return path.endswith("/")


def specifies_current_dir(path: str) -> bool:
    return go_base(path) == "."


def asserts_directory(path: str) -> bool:
    """A path ending in `/` or `/.` says the caller means a directory."""
    return has_trailing_separator(path) or specifies_current_dir(path)


def preserve_trailing(cleaned: str, original: str) -> str:
    """Put back the trailing `/.` or `/` that cleaning took off: they carry meaning."""
    if not specifies_current_dir(cleaned) and specifies_current_dir(original):
        if not has_trailing_separator(cleaned):
            cleaned += "/"
        cleaned += "."
    if not has_trailing_separator(cleaned) and has_trailing_separator(original):
        cleaned += "/"
    return cleaned


def split_path_dir_entry(path: str) -> tuple[str, str]:
    """Directory and base name, keeping a trailing `.` as the base (`a/.` is `a`, `.`)."""
    cleaned = go_clean(path)
    if specifies_current_dir(path):
        cleaned += "/."
    return go_dir(cleaned), go_base(cleaned)


def rebase_name(path: str, resolved: str) -> tuple[str, str]:
    """`GetRebaseName`: the resolved path with `path`'s trailing `/.` or `/`, and the name
    the archive must use when resolving a link changed the last element."""
    if specifies_current_dir(path) and not specifies_current_dir(resolved):
        resolved += "/."
    if has_trailing_separator(path) and not has_trailing_separator(resolved):
        resolved += "/"
    return resolved, go_base(path) if go_base(path) != go_base(resolved) else ""


def split_cp_arg(arg: str) -> tuple[str, str]:
    """`CONTAINER:PATH` or a local path; `./a:b` and `/a:b` are local (as with scp)."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def rebaser(old: str, new: str) -> Callable[[str], str]:
    """`RebaseArchiveEntries`' renaming: `old` (and what is under it) becomes `new`.

    For a `.` base (a `dir/.` archive) names without the `./` prefix count as under it
    too: some daemons name the contents `x`, not `./x`.
    """
    old = old.rstrip("/")
    new = new.rstrip("/")
    if not old:
        return lambda name: f"{new}/{name.lstrip('/')}" if new else name.lstrip("/")

    def rename(name: str) -> str:
        if name == old or name.startswith(old + "/"):
            return new + name[len(old):]
        if old == "." and not name.startswith("/"):
            return f"{new}/{name}"
        return name

    return rename


# --- what each side is -----------------------------------------------------------------

@attrs.frozen
class CopyInfo:
    """A copy's source or destination: its path, whether it exists and is a directory,
    and the name its archive entries must take (after a followed link)."""

    path: str
    exists: bool = False
    is_dir: bool = False
    rebase: str = ""


@attrs.frozen
class CopyPlan:
    """Where to unpack, and how to rename the archive's top entry to get docker's result."""

    dest_dir: str
    old_base: str | None = None
    new_base: str | None = None

    def renamer(self) -> Callable[[str], str]:
        if self.old_base is None or self.new_base is None:
            return lambda name: name
        return rebaser(self.old_base, self.new_base)


def plan_copy(src: CopyInfo, dst: CopyInfo) -> CopyPlan:
    """`PrepareArchiveCopy`: the rules that make `cp` behave like `cp`.

    An existing directory receives the archive as it is (so a directory nests); any
    other destination is unpacked in its parent with the top entry renamed to the
    destination's name (a rename).
    """
    dst_dir, dst_base = split_path_dir_entry(dst.path)
    src_base = src.rebase or split_path_dir_entry(src.path)[1]
    if dst.exists and dst.is_dir:
        return CopyPlan(dst.path)
    if dst.exists and src.is_dir:
        raise CopyError("cannot copy directory")
    if not dst.exists and not src.is_dir and asserts_directory(dst.path):
        raise CopyError("no such directory")
    return CopyPlan(dst_dir, src_base, dst_base)


def go_os_error(op: str, path: str, exc: OSError) -> str:
    """An OSError in Go's words: `lstat /x: no such file or directory`."""
    text = exc.strerror or str(exc)
    return f"{op} {path}: {text[:1].lower()}{text[1:]}"


def local_path(path: str) -> str:
    """`filepath.Abs`, keeping the trailing `/` or `/.`."""
    return preserve_trailing(go_clean(os.path.join(os.getcwd(), path)), path)


def _eval_symlinks(path: str) -> str:
    try:
        return os.path.realpath(path, strict=True)
    except OSError as exc:
        raise CopyError(go_os_error("lstat", str(exc.filename or path), exc)) from None


def local_source(path: str, follow_link: bool) -> CopyInfo:
    """`CopyInfoSourcePath`: links before the last element resolved; the last one too
    with `-L` (the archive then keeps the name the user gave)."""
    if follow_link:
        resolved, rebase = rebase_name(path, _eval_symlinks(path))
    else:
        head, tail = path[: path.rfind("/") + 1], path[path.rfind("/") + 1:]
        resolved = _eval_symlinks(head or ".").rstrip("/") + "/" + tail
        rebase = go_base(path) if (has_trailing_separator(path)
                                   and go_base(path) != go_base(resolved)) else ""
    try:
        st = os.lstat(resolved)
    except OSError as exc:
        raise CopyError(go_os_error("lstat", resolved, exc)) from None
    return CopyInfo(resolved, True, stat.S_ISDIR(st.st_mode), rebase)


def local_destination(path: str) -> CopyInfo:
    """`CopyInfoDestinationPath`: links followed (ten at most); a missing path is fine
    when its parent is a directory."""
    original = path
    for _ in range(11):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return _missing_destination(path)
        except OSError as exc:
            raise CopyError(go_os_error("lstat", path, exc)) from None
        if not stat.S_ISLNK(st.st_mode):
            return CopyInfo(path, True, stat.S_ISDIR(st.st_mode))
        target = os.readlink(path)
        path = target if target.startswith("/") else go_join(split_path_dir_entry(path)[0], target)
    raise CopyError(f"too many symlinks in {original}")


def _missing_destination(path: str) -> CopyInfo:
    parent = split_path_dir_entry(path)[0]
    try:
        st = os.stat(parent)
    except OSError as exc:
        raise CopyError(go_os_error("stat", parent, exc)) from None
    if not stat.S_ISDIR(st.st_mode):
        raise CopyError("not a directory")
    return CopyInfo(path)


def validate_output_path(path: str) -> None:
    """docker's check before writing on the host: the directory exists, the target is
    a directory, a regular file, or nothing."""
    directory = go_dir(go_clean(path))
    if directory not in ("", ".") and not os.path.exists(directory):
        raise CopyError(f"invalid output path: directory {go_quote(directory)} does not exist")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CopyError(go_os_error("stat", path, exc)) from None
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        raise CopyError(f"invalid output path: {go_quote(path)} must be a directory or a "
                        "regular file: got a device")
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise CopyError(f"invalid output path: {go_quote(path)} must be a directory or a "
                        "regular file: got an irregular file")


def content_size(path: str) -> int:
    """The bytes of regular-file content at `path` (what the summary line reports)."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size if stat.S_ISREG(st.st_mode) else 0
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            entry = os.lstat(os.path.join(top, name))
            if stat.S_ISREG(entry.st_mode):
                total += entry.st_size
    return total


# --- the container's side ----------------------------------------------------------------

@attrs.frozen
class ContainerStat:
    """The daemon's `X-Docker-Container-Path-Stat`: a path's name, size, Go mode, link."""

    name: str
    size: int
    mode: int
    link_target: str

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & _MODE_DIR)

    @property
    def is_symlink(self) -> bool:
        return bool(self.mode & _MODE_SYMLINK)


def parse_stat_header(value: str | None) -> ContainerStat | None:
    if not value:
        return None
    try:
        doc = json.loads(base64.b64decode(value))
    except ValueError:
        return None
    return ContainerStat(str(doc.get("name") or ""), int(doc.get("size") or 0),
                         int(doc.get("mode") or 0), str(doc.get("linkTarget") or ""))


def _archive_path(container: str) -> str:
    return f"/containers/{quote_path(container)}/archive"


def container_stat(client: Client, container: str, path: str) -> ContainerStat | None:
    """HEAD the path; None when it cannot be stat'ed (docker ignores that error)."""
    with client.request("HEAD", _archive_path(container), {"path": path}) as response:
        if not response.ok:
            return None
        return parse_stat_header(response.headers.get(_STAT_HEADER))


def _followed_link(path: str, info: ContainerStat) -> str:
    target = info.link_target
    return target if target.startswith("/") else go_join(split_path_dir_entry(path)[0], target)


# --- tar streams -------------------------------------------------------------------------

class ChunkReader(io.RawIOBase):
    """A response body (an iterator of chunks) as a file."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _local_name(name: str) -> str | None:
    """A member name cleaned to a path under the destination; None if it is outside."""
    if name.startswith("/"):
        return None
    cleaned = posixpath.normpath(name) if name else "."
    if cleaned == ".." or cleaned.startswith("../"):
        return None
    return cleaned


def check_member(dest: Path, member: tarfile.TarInfo) -> None:
    """Refuse what must not reach the host, in the go-archive's words."""
    name = _local_name(member.name)
    if name is None:
        raise CopyError(f"invalid entry name {go_quote(member.name)}")
    if member.islnk() and _local_name(member.linkname) in (None, "."):
        raise CopyError(f"invalid hardlink target {go_quote(member.linkname)}")
    if member.issym() and not member.linkname.startswith("/") and _local_name(
            posixpath.join(posixpath.dirname(name), member.linkname)) is None:
        raise CopyError(f"invalid symlink {go_quote(str(dest / name))} -> "
                            f"{go_quote(member.linkname)}")
    if name == ".":
        return
    try:
        existing = os.lstat(resolve_in_root(dest, name, follow_final=False))
    except (FileNotFoundError, NotADirectoryError):
        return
    except ScopeError as exc:
        raise CopyError(str(exc)) from None
    is_dir = stat.S_ISDIR(existing.st_mode)
    if is_dir and not member.isdir():
        raise CopyError(f"cannot overwrite directory {go_quote(name)} with non-directory "
                        f"{go_quote(str(dest))}")
    if not is_dir and member.isdir():
        raise CopyError(f"cannot overwrite non-directory {go_quote(name)} with directory "
                        f"{go_quote(str(dest))}")


def _renamed(member: tarfile.TarInfo, rename: Callable[[str], str]) -> tarfile.TarInfo:
    member.name = rename(member.name)
    if member.islnk():
        member.linkname = rename(member.linkname)
    # a PAX `path` would win over the new name when the header is written again
    member.pax_headers = {k: v for k, v in member.pax_headers.items()
                          if k not in ("path", "linkpath")}
    return member


def tar_length(tf: tarfile.TarFile) -> int:
    """The archive's size up to its end marker, padding left out (as Go's tar counts)."""
    return tf.offset + 2 * tarfile.BLOCKSIZE


def checked_archive(source: IO[bytes], dest: Path, renames: Sequence[Callable[[str], str]],
                    spool: IO[bytes]) -> int:
    """Copy the tar to `spool`, members renamed and checked against `dest`; returns the
    size of the tar read."""
    with tarfile.open(fileobj=source, mode="r|") as tf_in, \
            tarfile.open(fileobj=spool, mode="w|", format=tarfile.PAX_FORMAT) as tf_out:
        for member in tf_in:
            for rename in renames:
                member = _renamed(member, rename)
            check_member(dest, member)
            tf_out.addfile(member, tf_in.extractfile(member) if member.isreg() else None)
        return tar_length(tf_in)


def unpack_on_host(source: IO[bytes], plan: CopyPlan,
                   renames: Sequence[Callable[[str], str]] = ()) -> int:
    """Unpack a container's tar where `plan` says, by the checks above and the safe
    extractor (scoped parents, no devices, no owners); returns the tar's size."""
    dest = Path(plan.dest_dir)
    with tempfile.TemporaryFile() as spool:
        try:
            size = checked_archive(source, dest, [*renames, plan.renamer()], spool)
            spool.seek(0)
            extract_tar(spool, dest, ExtractRules.foreign("archive"))
            return size
        except InvalidParameter as exc:
            raise CopyError(str(exc)) from None
        except tarfile.TarError as exc:
            raise CopyError(f"invalid archive: {exc}") from None
        except OSError as exc:
            raise CopyError(go_os_error("open", str(exc.filename or dest), exc)) from None


def _whole_seconds(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Go's archiver truncates mtimes to seconds (and so needs no PAX header for them)."""
    info.mtime = int(info.mtime)
    return info


def write_source_archive(src: CopyInfo, top_name: str, out: IO[bytes]) -> int:
    """A tar of the local source, its top entry named `top_name` (`.` for `dir/.`), in
    the seekable `out`; returns its size, the record padding cut off as Go writes it."""
    start = out.tell()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        tf.add(src.path, arcname=top_name, recursive=True, filter=_whole_seconds)
        length = tar_length(tf)
    out.truncate(start + length)
    out.seek(start + length)
    return length


# --- the command -------------------------------------------------------------------------

@attrs.frozen
class CopyRequest:
    """One `cp`, its two sides split and its flags."""

    container: str
    source: str
    dest: str
    follow_link: bool = False
    copy_uid_gid: bool = False
    quiet: bool = True


def summary(content: int, transferred: int, dest: str) -> str:
    """`Successfully copied 1.2kB to /x`; the tar size too when it differs."""
    if content != transferred:
        return (f"Successfully copied {human_size(content, 3)} "
                f"(transferred {human_size(transferred, 3)}) to {dest}\n")
    return f"Successfully copied {human_size(content, 3)} to {dest}\n"


def copy_from_container(client: Client, req: CopyRequest) -> str | None:
    """Container to host (or to stdout with `-`); returns the summary line."""
    dest = req.dest if req.dest == "-" else local_path(req.dest)
    if dest != "-":
        validate_output_path(dest)
    src_path, rebase = req.source, ""
    if req.follow_link:
        info = container_stat(client, req.container, src_path)
        if info is not None and info.is_symlink:
            src_path, rebase = rebase_name(src_path, _followed_link(src_path, info))
    with client.call("GET", _archive_path(req.container), {"path": src_path}) as response:
        if dest == "-":
            _to_stdout(response)
            return None
        info = parse_stat_header(response.headers.get(_STAT_HEADER))
        is_dir = info.is_dir if info is not None else False
        src = CopyInfo(src_path, True, is_dir, rebase)
        renames = [rebaser(split_path_dir_entry(src_path)[1], rebase)] if rebase else []
        reader = ChunkReader(response.iter_body())
        plan = plan_copy(src, local_destination(dest))
        transferred = unpack_on_host(io.BufferedReader(reader, _CHUNK), plan, renames)
    size = transferred if is_dir or info is None else info.size
    return summary(size, transferred, dest)


def _to_stdout(response: Response) -> None:
    sys.stdout.flush()
    target = sys.stdout.buffer
    for chunk in response.iter_body():
        target.write(chunk)
    target.flush()


def container_destination(client: Client, req: CopyRequest) -> CopyInfo:
    """Stat the destination in the container, following a link there; errors mean
    "maybe missing" (the extraction will tell)."""
    path = req.dest
    info = container_stat(client, req.container, path)
    if info is not None and info.is_symlink:
        path = _followed_link(req.dest, info)
        info = container_stat(client, req.container, path)
    if info is None:
        return CopyInfo(path)
    if info.mode & _MODE_DEVICE or info.mode & _MODE_IRREGULAR:
        kind = "a device" if info.mode & _MODE_DEVICE else "an irregular file"
        raise CopyError(f'destination "{req.container}:{req.dest}" must be a directory or a '
                        f"regular file: got {kind}")
    return CopyInfo(path, True, info.is_dir)


def copy_to_container(client: Client, req: CopyRequest) -> str | None:
    """Host (or a tar on stdin) to container; returns the summary line."""
    dst = container_destination(client, req)
    params = {"path": dst.path, "noOverwriteDirNonDir": "true",
              "copyUIDGID": "true" if req.copy_uid_gid else None}
    headers = {"Content-Type": "application/x-tar"}
    if req.source == "-":
        if not dst.is_dir:
            raise CopyError(f'destination "{req.container}:{req.dest}" must be a directory')
        client.call("PUT", _archive_path(req.container), params, body=sys.stdin.buffer,
                    headers=headers).close()
        return summary(0, 0, f"{req.container}:{dst.path}")
    src = local_source(local_path(req.source), req.follow_link)
    size = content_size(src.path)
    plan = plan_copy(src, dst)
    top = plan.renamer()(src.rebase or split_path_dir_entry(src.path)[1])
    with tempfile.TemporaryFile() as spool:
        transferred = write_source_archive(src, top, spool)
        spool.seek(0)
        client.call("PUT", _archive_path(req.container), {**params, "path": plan.dest_dir},
                    body=spool, headers=headers).close()
    return summary(size, transferred, f"{req.container}:{dst.path}")


def plan_request(source: str, dest: str, follow_link: bool, copy_uid_gid: bool,
                 quiet: bool) -> tuple[str, CopyRequest]:
    """Which way the copy goes (`from` or `to` the container), docker's errors otherwise."""
    if not source:
        raise CopyError("source can not be empty")
    if not dest:
        raise CopyError("destination can not be empty")
    src_container, src_path = split_cp_arg(source)
    dst_container, dst_path = split_cp_arg(dest)
    if src_container and dst_container:
        raise CopyError("copying between containers is not supported")
    if not src_container and not dst_container:
        raise CopyError("must specify at least one container source")
    container = src_container or dst_container
    req = CopyRequest(container, src_path, dst_path, follow_link, copy_uid_gid, quiet)
    return ("from" if src_container else "to"), req


def _run(client: Client, direction: str, req: CopyRequest) -> None:
    line = (copy_from_container if direction == "from" else copy_to_container)(client, req)
    if line and not req.quiet:
        sys.stdout.flush()
        sys.stderr.write(line)


@click.command()
@click.option("-a", "--archive", "archive", is_flag=True,
              help="Archive mode (copy all uid/gid information)")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symlinks in SRC_PATH")
@click.option("-q", "--quiet", is_flag=True,
              help="Suppress progress output during copy. Progress output is automatically "
                   "suppressed if no terminal is attached")
@click.argument("source", metavar="CONTAINER:SRC_PATH|SRC_PATH|-")
@click.argument("dest", metavar="DEST_PATH|-|CONTAINER:DEST_PATH")
@pass_app
def cp(app: App, archive: bool, follow_link: bool, quiet: bool, source: str, dest: str) -> None:
    """Copy files/folders between a container and the local filesystem.

    Use '-' as the source to read a tar archive from stdin and extract it to a
    directory destination in a container. Use '-' as the destination to stream a
    tar archive of a container source to stdout.
    """
    try:
        direction, req = plan_request(source, dest, follow_link, archive,
                                      quiet or not sys.stdout.isatty())
        _run(app.client, direction, req)
    except CopyError as exc:
        raise CommandError(str(exc)) from None
    except ClientError as exc:
        raise CommandError(describe(exc)) from None


__all__ = [
    "ChunkReader",
    "ContainerStat",
    "CopyError",
    "CopyInfo",
    "CopyPlan",
    "check_member",
    "cp",
    "go_base",
    "go_clean",
    "go_dir",
    "local_destination",
    "local_source",
    "parse_stat_header",
    "plan_copy",
    "preserve_trailing",
    "rebase_name",
    "rebaser",
    "split_cp_arg",
    "split_path_dir_entry",
    "unpack_on_host",
    "validate_output_path",
]
