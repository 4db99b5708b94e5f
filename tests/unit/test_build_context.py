"""The build context: hostile tarballs, `.dockerignore` dropping, `-f` paths."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.build.context import (
    DockerfileNotFound,
    drop_ignored,
    extract_context,
    read_dockerfile,
)
from engine.errors import InvalidParameter

Member = tuple[tarfile.TarInfo, bytes | None]


def _file(name: str, data: bytes = b"x", mode: int = 0o644, mtime: int = 1_000_000,
          uid: int = 1234) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid = len(data), mode, mtime, uid, uid
    return info, data


def _special(name: str, kind: bytes, linkname: str = "", mode: int = 0o755) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, linkname, mode, 2_000_000
    return info, None


def _tar(members: list[Member], compress: Callable[[bytes], bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return compress(raw) if compress else raw


def _extract(tmp_path: Path, members: list[Member],
             compress: Callable[[bytes], bytes] | None = None) -> Path:
    tarball = tmp_path / "ctx.tar"
    tarball.write_bytes(_tar(members, compress))
    dest = tmp_path / "ctx"
    extract_context(tarball, dest)
    return dest


@pytest.mark.parametrize("compress", [None, gzip.compress, bz2.compress, lzma.compress])
def test_extracts_any_compression_keeping_mode_and_mtime(
        tmp_path: Path, compress: Callable[[bytes], bytes] | None) -> None:
    dest = _extract(tmp_path, [
        _special("dir", tarfile.DIRTYPE, mode=0o750),
        _file("dir/run.sh", b"#!/bin/sh\n", mode=0o755, mtime=1_234_567),
    ], compress)
    st = os.stat(dest / "dir/run.sh")
    assert (dest / "dir/run.sh").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(st.st_mode) == 0o755
    assert int(st.st_mtime) == 1_234_567
    assert stat.S_IMODE(os.stat(dest / "dir").st_mode) == 0o750
    assert int(os.stat(dest / "dir").st_mtime) == 2_000_000


def test_ownership_from_the_tar_is_ignored(tmp_path: Path) -> None:
    dest = _extract(tmp_path, [_file("f", uid=4242)])
    assert os.stat(dest / "f").st_uid == os.geteuid()


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x"])
def test_escaping_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidParameter, match="member"):
        _extract(tmp_path, [_file(name)])
    assert not (tmp_path / "x").exists()


def test_symlinks_are_kept_and_never_followed_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = _extract(tmp_path, [
        _special("up", tarfile.SYMTYPE, linkname=str(outside)),
        _special("rel", tarfile.SYMTYPE, linkname="../outside"),
        _file("up/evil", b"boom"),
        _file("rel/evil2", b"boom"),
    ])
    assert os.readlink(dest / "up") == str(outside)
    assert not any(outside.iterdir())
    # written in scope: the absolute link is resolved inside the context
    assert (dest / outside.relative_to("/") / "evil").read_bytes() == b"boom"


def test_hard_links_inside_work_outside_or_missing_are_refused(tmp_path: Path) -> None:
    dest = _extract(tmp_path, [_file("a", b"1"), _special("b", tarfile.LNKTYPE, linkname="a")])
    assert os.stat(dest / "a").st_ino == os.stat(dest / "b").st_ino
    for i, target in enumerate(("../../etc/passwd", "missing", "/etc/passwd")):
        (tmp_path / str(i)).mkdir()
        with pytest.raises(InvalidParameter, match="hard link"):
            _extract(tmp_path / str(i), [_special("b", tarfile.LNKTYPE, linkname=target)])


def test_devices_skipped_and_whiteout_names_are_plain_files(tmp_path: Path) -> None:
    dest = _extract(tmp_path, [
        _special("null", tarfile.CHRTYPE),
        _special("pipe", tarfile.FIFOTYPE),
        _file(".wh.gone", b"still here"),
    ])
    assert not (dest / "null").exists()
    assert not (dest / "pipe").exists()
    assert (dest / ".wh.gone").read_bytes() == b"still here"


def test_garbage_is_invalid(tmp_path: Path) -> None:
    tarball = tmp_path / "junk"
    tarball.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(InvalidParameter):
        extract_context(tarball, tmp_path / "ctx")


def _unterminated(members: list[Member]) -> bytes:
    """What the docker CLI sends with `-f -`: the last member's data not padded to a
    block, no end-of-archive blocks."""
    raw = _tar(members)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        last = tf.getmembers()[-1]
    return raw[: last.offset_data + last.size]


@pytest.mark.parametrize("compress", [None, gzip.compress])
def test_a_tar_ending_after_the_last_members_data_is_accepted(
        tmp_path: Path, compress: Callable[[bytes], bytes] | None) -> None:
    raw = _unterminated([_file("a", b"first"), _file(".dockerignore", b"x" * 47)])
    assert len(raw) % 512 == 47
    tarball = tmp_path / "ctx.tar"
    tarball.write_bytes(compress(raw) if compress else raw)
    extract_context(tarball, tmp_path / "ctx")
    assert (tmp_path / "ctx/a").read_bytes() == b"first"
    assert (tmp_path / "ctx/.dockerignore").read_bytes() == b"x" * 47
    # on a block boundary, without the end blocks
    whole = _unterminated([_file("b", b"y" * 512)])
    tarball.write_bytes(whole)
    extract_context(tarball, tmp_path / "ctx2")
    assert (tmp_path / "ctx2/b").read_bytes() == b"y" * 512


@pytest.mark.parametrize("cut", [1, 20, 600])
def test_a_member_cut_short_is_refused(tmp_path: Path, cut: int) -> None:
    raw = _unterminated([_file("a", b"first"), _file("big", b"z" * 1000)])
    tarball = tmp_path / "ctx.tar"
    tarball.write_bytes(raw[:-cut])
    with pytest.raises(InvalidParameter, match="end of data"):
        extract_context(tarball, tmp_path / "ctx")


def _context(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "ctx"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _names(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_drop_ignored_applies_rules_and_exceptions(tmp_path: Path) -> None:
    root = _context(tmp_path, {
        ".dockerignore": "*.log\nbuild\nvendor\n!vendor/keep.go\nDockerfile\n.dockerignore\n",
        "Dockerfile": "FROM x", "app.py": "", "a.log": "", "build/out": "",
        "vendor/keep.go": "", "vendor/drop.go": "", "sub/b.log": "",
    })
    drop_ignored(root, "Dockerfile")
    assert _names(root) == {"app.py", "vendor", "vendor/keep.go", "sub", "sub/b.log"}


def test_drop_ignored_without_dockerignore_keeps_all(tmp_path: Path) -> None:
    root = _context(tmp_path, {"Dockerfile": "FROM x", "a.log": ""})
    drop_ignored(root, "Dockerfile")
    assert _names(root) == {"Dockerfile", "a.log"}


def test_drop_ignored_keeps_build_files_not_excluded(tmp_path: Path) -> None:
    root = _context(tmp_path, {".dockerignore": "*.md\n", "Dockerfile": "FROM x", "R.md": ""})
    drop_ignored(root, "Dockerfile")
    assert _names(root) == {".dockerignore", "Dockerfile"}


def test_read_dockerfile_default_lowercase_and_sub_path(tmp_path: Path) -> None:
    root = _context(tmp_path, {"dockerfile": "FROM lower", "sub/Dockerfile.dev": "FROM dev"})
    assert read_dockerfile(root, "") == b"FROM lower"
    assert read_dockerfile(root, "Dockerfile") == b"FROM lower"
    assert read_dockerfile(root, "sub/Dockerfile.dev") == b"FROM dev"
    assert read_dockerfile(root, "/sub/Dockerfile.dev") == b"FROM dev"


def test_read_dockerfile_errors(tmp_path: Path) -> None:
    root = _context(tmp_path, {"empty": "", "other": "FROM x"})
    with pytest.raises(DockerfileNotFound, match=r"^Cannot locate specified Dockerfile: Dockerfile$"):
        read_dockerfile(root, "Dockerfile")
    with pytest.raises(DockerfileNotFound, match="Dockerfile: nope"):
        read_dockerfile(root, "nope")
    with pytest.raises(InvalidParameter, match="cannot be empty"):
        read_dockerfile(root, "empty")
    with pytest.raises(InvalidParameter, match="outside the build context"):
        read_dockerfile(root, "../secret")


def test_read_dockerfile_symlink_stays_in_scope(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host file")
    root = _context(tmp_path, {"x": ""})
    os.symlink(secret, root / "Dockerfile")
    with pytest.raises(DockerfileNotFound):
        read_dockerfile(root, "Dockerfile")
    os.symlink("x2", root / "link")
    (root / "x2").write_text("FROM linked")
    assert read_dockerfile(root, "link") == b"FROM linked"
