"""engine.kernel's libc binding and mount helpers: option words, the mount table, and
failures reported with the kernel's errno (no mount is made here)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from engine.kernel import libc, mounts
from engine.kernel.libc import MS_BIND, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC


def test_option_words_become_flags_propagation_and_data() -> None:
    parsed = mounts.parse_options("rbind, ro,nosuid,rprivate,uid=1000,size=64m")
    assert parsed.flags == MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID
    assert parsed.propagation == MS_PRIVATE | MS_REC
    assert parsed.data == "uid=1000,size=64m"
    assert parsed.is_bind


def test_later_words_win() -> None:
    assert mounts.parse_options("ro,rw").flags == 0
    assert mounts.parse_options("rw,ro").flags == MS_RDONLY
    assert not mounts.parse_options("").is_bind


def test_mountinfo_escapes_are_undone() -> None:
    assert mounts._unescape(b"/var/lib/with\\040space\\011tab") == b"/var/lib/with space\ttab"
    assert mounts._unescape(b"/plain") == b"/plain"
    assert mounts._unescape(b"/trailing\\04") == b"/trailing\\04"


def test_the_root_is_a_mount_point_and_a_fresh_directory_is_not(tmp_path: Path) -> None:
    assert mounts.is_mountpoint(Path("/"))
    assert Path("/") in mounts.mounts_under(Path("/"))
    assert not mounts.is_mountpoint(tmp_path)
    assert mounts.mounts_under(tmp_path) == []


needs_root = pytest.mark.needs_root("umount2 says EPERM before anything else to a non-root caller")


@needs_root
def test_a_failed_call_raises_oserror_with_the_kernels_errno(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as failed:
        libc.umount2(os.fsencode(tmp_path / "missing"))
    assert failed.value.errno == errno.ENOENT
    assert failed.value.strerror == os.strerror(errno.ENOENT)


@needs_root
def test_unmounting_what_is_not_mounted_is_fine(tmp_path: Path) -> None:
    mounts.unmount(tmp_path)
    mounts.unmount(tmp_path / "missing")
