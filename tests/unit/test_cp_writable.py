"""Where `docker cp` may write: dockerd's `checkWritablePath`, and no host path in errors."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from engine.containers.archive import Writable, extract_archive, path_stat
from engine.errors import InvalidParameter


def test_mounts_decide_before_the_root_filesystem() -> None:
    w = Writable(readonly_rootfs=True, mounts=(("/data", False), ("/data/ro", True),
                                               ("/srv/", False)))
    for ok in ("/data", "/data/x", "/data/rox", "/srv/a"):
        w.check(ok)
    for path, words in (("/data/ro", "mounted volume is marked read-only"),
                        ("/data/ro/deep", "mounted volume is marked read-only"),
                        ("/", "container rootfs is marked read-only"),
                        ("/datax", "container rootfs is marked read-only")):
        with pytest.raises(InvalidParameter) as info:
            w.check(path)
        assert info.value.message == words
    Writable().check("/anything")


def _tar(name: str, data: bytes) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_the_check_sees_the_resolved_path(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "link").symlink_to("/data")
    w = Writable(readonly_rootfs=True, mounts=(("/data", False),))
    extract_archive(root, "/link", _tar("f", b"x"), keep_owner=False, writable=w)
    assert (root / "data" / "f").read_bytes() == b"x"
    with pytest.raises(InvalidParameter) as info:
        extract_archive(root, "/", _tar("f", b"x"), keep_owner=False, writable=w)
    assert str(tmp_path) not in info.value.message


def test_the_root_of_a_live_container_is_a_directory(tmp_path: Path) -> None:
    """A running container's root is reached through `/proc/<pid>/root`, a symlink."""
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "proc-root"
    link.symlink_to(real)
    info = path_stat(link, "/")
    assert info.mode & (1 << 31)  # a directory, in Go's FileMode bits
    assert info.link_target == ""
    extract_archive(link, "/", _tar("top.txt", b"t"), keep_owner=False)
    assert (real / "top.txt").read_bytes() == b"t"
