"""The volume counts on their own (`Usage`), and the bind-source checks (`binds`).

No driver and no mounts: `Usage` is the in-memory bookkeeping the container side keeps
(who uses a volume, who has it mounted), and `binds` the host-path rules.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from engine.errors import InvalidParameter
from engine.volumes.binds import check_bind_source, make_bind_source, missing_paths
from engine.volumes.usage import Usage

C1 = "c1" * 32
C2 = "c2" * 32


def test_users_are_counted_per_volume() -> None:
    usage = Usage()
    assert usage.users("v") == []
    assert not usage.in_use("v")
    usage.add_user("v", C2)
    usage.add_user("v", C1)
    usage.add_user("v", C1)
    assert usage.users("v") == [C1, C2]
    assert usage.in_use("v")
    assert not usage.in_use("other")
    usage.drop_user("v", C1)
    usage.drop_user("v", C1)  # dropping twice is harmless
    usage.drop_user("nothing", C1)
    assert usage.users("v") == [C2]
    usage.drop_user("v", C2)
    assert not usage.in_use("v")


def test_the_last_mount_holder_is_told() -> None:
    usage = Usage()
    assert not usage.is_mounted("v")
    assert not usage.drop_mount("v", C1)  # never mounted: nothing to unmount
    usage.add_mount("v", C1)
    usage.add_mount("v", C2)
    assert usage.is_mounted("v")
    assert not usage.drop_mount("v", C1)  # C2 still has it mounted
    assert not usage.drop_mount("v", C1)  # C1 no longer holds it
    assert usage.drop_mount("v", C2)
    assert not usage.is_mounted("v")
    assert not usage.drop_mount("v", C2)


def test_forget() -> None:
    usage = Usage()
    usage.add_user("v", C1)
    usage.add_mount("v", C1)
    usage.forget("v")
    usage.forget("never")
    assert not usage.in_use("v")
    assert not usage.is_mounted("v")


def test_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "here").mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    paths = [str(tmp_path / n) for n in ("here", "dangling", "gone")]
    assert missing_paths(paths) == [str(tmp_path / "gone")]


def test_make_bind_source(tmp_path: Path) -> None:
    source = tmp_path / "a" / "b"
    make_bind_source(str(source))
    assert source.is_dir()
    assert stat.S_IMODE(source.stat().st_mode) == 0o755 & ~_umask()
    (tmp_path / "file").write_text("x")
    make_bind_source(str(tmp_path / "file"))  # something is there: left alone
    assert (tmp_path / "file").read_text() == "x"


def test_check_bind_source(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="bind source path does not exist"):
        check_bind_source(str(tmp_path / "gone"), create=False)
    check_bind_source(str(tmp_path / "made"), create=True)
    assert (tmp_path / "made").is_dir()
    check_bind_source(str(tmp_path / "made"), create=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
