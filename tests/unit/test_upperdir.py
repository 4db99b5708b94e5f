"""An overlayfs upper directory as a layer tarball, and back through the unpacker."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from engine.images.unpack import OPAQUE_XATTR, unpack_layer
from engine.images.upperdir import write_upper_tar


@pytest.fixture
def upper(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.fail("whiteouts (0/0 character devices) and trusted.* xattrs need root")
    u = tmp_path / "upper"
    (u / "etc").mkdir(parents=True)
    (u / "etc" / "motd").write_text("changed\n")
    (u / "etc" / "hosts").write_text("")  # a runtime stub: left out
    (u / "proc").mkdir()  # likewise
    os.mknod(u / "etc" / "gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))  # deleted file
    (u / "opaque").mkdir()
    os.setxattr(u / "opaque", OPAQUE_XATTR, b"y")
    (u / "opaque" / "kept").write_text("k")
    (u / "data").mkdir()
    (u / "data" / "f").write_bytes(b"x" * 5000)
    os.chmod(u / "data" / "f", 0o4755)
    os.link(u / "data" / "f", u / "data" / "hard")
    os.symlink("/data/f", u / "data" / "link")
    os.mkfifo(u / "data" / "fifo")
    os.makedirs(u / "/".join(f"d{i % 10}" for i in range(200)))  # deep nesting
    return u


def test_members(upper: Path) -> None:
    buf = io.BytesIO()
    layer = write_upper_tar(upper, buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        names = {m.name: m for m in tf}
    assert "etc/.wh.gone" in names
    assert "etc/gone" not in names
    assert "etc/hosts" not in names
    assert "proc" not in names
    assert "opaque/.wh..wh..opq" in names
    assert names["data/hard"].islnk()
    assert names["data/hard"].linkname == "data/f"
    assert names["data/link"].issym()
    assert names["data/fifo"].isfifo()
    assert names["data/f"].mode == 0o4755
    assert layer.size == len(buf.getvalue())
    # the same files give the same bytes
    again = io.BytesIO()
    assert write_upper_tar(upper, again).digest == layer.digest
    assert again.getvalue() == buf.getvalue()


def test_round_trip_through_the_unpacker(upper: Path, tmp_path: Path) -> None:
    buf = io.BytesIO()
    layer = write_upper_tar(upper, buf)
    dest = tmp_path / "layer"
    stats = unpack_layer(io.BytesIO(buf.getvalue()), dest)
    assert stats.diff_id == layer.digest
    gone = os.lstat(dest / "etc" / "gone")
    assert stat.S_ISCHR(gone.st_mode)
    assert gone.st_rdev == 0
    assert os.getxattr(dest / "opaque", OPAQUE_XATTR) == b"y"
    assert (dest / "data" / "f").stat().st_ino == (dest / "data" / "hard").stat().st_ino
    assert (dest / "etc" / "motd").read_text() == "changed\n"
