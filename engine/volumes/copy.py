"""Copying an image's directory into a new volume, and measuring a volume. Blocking.

`copy_tree` is Docker's "copy existing contents": when a container first mounts an
empty volume where its image has files, the volume starts with those files, with
their owners, modes, timestamps, extended attributes, symlinks, hard links and device
nodes, as `cp -a` would copy them. The source is a container's root filesystem and so
untrusted: nothing here follows a symlink (a link is copied as a link), and the walk
never leaves the source directory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

_SKIPPED_XATTR_PREFIXES = ("trusted.overlay.", "security.selinux")
_COPY_CHUNK = 1 << 20


def is_empty_dir(path: Path) -> bool:
    with os.scandir(path) as entries:
        return next(entries, None) is None


def copy_tree(source: Path, destination: Path, *, root_metadata: bool = True) -> int:
    """Copy the contents of directory `source` into the existing directory `destination`.

    With `root_metadata`, `destination` also takes `source`'s owner and mode (Docker
    does that, so a volume on `/var/lib/app` owned by `app` is writable by `app`).
    Returns the number of entries copied.
    """
    links: dict[tuple[int, int], Path] = {}
    count = _copy_dir_contents(source, destination, links)
    if root_metadata:
        st = os.lstat(source)
        os.chown(destination, st.st_uid, st.st_gid)
        os.chmod(destination, stat.S_IMODE(st.st_mode))
        _copy_xattrs(source, destination)
    return count


def _copy_dir_contents(source: Path, destination: Path, links: dict[tuple[int, int], Path]) -> int:
    count = 0
    with os.scandir(source) as entries:
        children = sorted(entries, key=lambda e: e.name)
    for entry in children:
        src = Path(entry.path)
        dst = destination / entry.name
        st = entry.stat(follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(dst, 0o700)
            count += _copy_dir_contents(src, dst, links)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                os.link(links[key], dst)
                count += 1
                continue
            _copy_file(src, dst)
            if st.st_nlink > 1:
                links[key] = dst
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            os.mknod(dst, mode, st.st_rdev)
        else:
            continue  # sockets mean nothing in a copy
        _copy_metadata(src, dst, st)
        count += 1
    return count


def _copy_file(src: Path, dst: Path) -> None:
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
        try:
            while True:
                try:
                    copied = os.copy_file_range(fd_in, fd_out, _COPY_CHUNK)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    _copy_by_read(fd_in, fd_out)
                    break
                if copied == 0:
                    break
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _copy_by_read(fd_in: int, fd_out: int) -> None:
    while chunk := os.read(fd_in, _COPY_CHUNK):
        view = memoryview(chunk)
        while view:
            written = os.write(fd_out, view)
            view = view[written:]


def _copy_metadata(src: Path, dst: Path, st: os.stat_result) -> None:
    is_link = stat.S_ISLNK(st.st_mode)
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    _copy_xattrs(src, dst)
    if not is_link:
        # after chown, which clears set-id bits
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(NotImplementedError, OSError):
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_xattrs(src: Path, dst: Path) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith(_SKIPPED_XATTR_PREFIXES):
            continue
        with contextlib.suppress(OSError):
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                        follow_symlinks=False)


def tree_size(path: Path) -> int:
    """Bytes of the regular files below `path`, each hard-linked file once (`du`-like)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [path]
    root_dev = os.lstat(path).st_dev
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        if st.st_dev == root_dev:
                            stack.append(Path(entry.path))
                    elif stat.S_ISREG(st.st_mode):
                        key = (st.st_dev, st.st_ino)
                        if key not in seen:
                            seen.add(key)
                            total += st.st_size
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
    return total
