"""Layer unpacking: fidelity (owners, modes, times, xattrs, whiteouts) and hostile archives.

These run as root (the test machines do): device nodes, whiteouts, chown and trusted.*
xattrs need it.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
from pathlib import Path

import pytest

from engine.errors import InvalidParameter
from engine.images import unpack
from engine.images.unpack import unpack_layer
from engine.tarball import compression

pytestmark = pytest.mark.needs_root("layer unpacking tests need root")

MTIME = 1_600_000_000


def _info(name: str, kind: bytes, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = MTIME
    info.mode = 0o755 if kind in (tarfile.DIRTYPE,) else 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def reg(name: str, data: bytes = b"", **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    info = _info(name, tarfile.REGTYPE, **attrs)
    info.size = len(data)
    return info, data


def dir_(name: str, **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.DIRTYPE, **attrs), b""


def sym(name: str, target: str, **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.SYMTYPE, linkname=target, mode=0o777, **attrs), b""


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.LNKTYPE, linkname=target), b""


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def run(data: bytes, dest: Path) -> unpack.LayerStats:
    return unpack_layer(io.BytesIO(data), dest)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    return d


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory that no archive may touch."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "passwd").write_text("host secret\n")
    os.utime(d, (1000, 1000))
    return d


def assert_untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]
    assert (outside / "passwd").read_text() == "host secret\n"
    assert os.stat(outside).st_mtime == 1000


# fidelity -----------------------------------------------------------------------


def test_files_dirs_links_ownership_modes_times_xattrs(dest: Path) -> None:
    caps = _info("bin/ping", tarfile.REGTYPE, uid=0, gid=0, mode=0o755)
    data = make_tar(
        dir_("bin/", uid=0, gid=0, mode=0o755, mtime=1_500_000_000),
        reg("bin/su", b"#!su\n", uid=0, gid=0, mode=0o4755),
        reg("home/user/notes", b"hello", uid=1234, gid=5678, mode=0o640),
        dir_("tmp/", mode=0o1777),
        sym("bin/sh", "busybox", uid=1234, gid=5678),
        reg("bin/busybox", b"\x7fELF" + b"x" * 100),
        hard("bin/ls", "bin/busybox"),
        (caps, b""),
    )
    # xattrs through PAX headers
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, \
            tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in src:
            payload = src.extractfile(member) if member.isreg() else None
            if member.name == "bin/ping":
                member.pax_headers = {
                    "SCHILY.xattr.user.comment": "fast",
                    "SCHILY.xattr.trusted.bin": "\x00\x01\xff".encode("latin-1").decode(
                        "utf-8", "surrogateescape"),
                }
            tar.addfile(member, payload)
    data = buf.getvalue()

    stats = run(data, dest)

    assert stats.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert stats.tar_size == len(data)
    assert stats.content_size == len(b"#!su\n") + 5 + 104

    su = os.lstat(dest / "bin/su")
    assert stat.S_IMODE(su.st_mode) == 0o4755  # setuid survives the chown
    assert (su.st_uid, su.st_gid) == (0, 0)
    notes = os.lstat(dest / "home/user/notes")
    assert (notes.st_uid, notes.st_gid, stat.S_IMODE(notes.st_mode)) == (1234, 5678, 0o640)
    assert notes.st_mtime == MTIME
    assert (dest / "home/user/notes").read_bytes() == b"hello"
    # implicit parents are made 0755
    assert stat.S_IMODE(os.lstat(dest / "home").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777
    link = os.lstat(dest / "bin/sh")
    assert stat.S_ISLNK(link.st_mode)
    assert os.readlink(dest / "bin/sh") == "busybox"
    assert (link.st_uid, link.st_gid) == (1234, 5678)
    assert link.st_mtime == MTIME
    assert os.lstat(dest / "bin/ls").st_ino == os.lstat(dest / "bin/busybox").st_ino
    # the directory's time is set after its children were written
    assert os.lstat(dest / "bin").st_mtime == 1_500_000_000
    assert os.getxattr(dest / "bin/ping", "user.comment") == b"fast"
    assert os.getxattr(dest / "bin/ping", "trusted.bin") == b"\x00\x01\xff"


def test_overlayfs_attributes_from_the_archive_are_dropped(dest: Path) -> None:
    info, data = reg("f", b"x")
    info.pax_headers = {
        "SCHILY.xattr.trusted.overlay.redirect": "/etc",
        "SCHILY.xattr.trusted.overlay.opaque": "y",
        "SCHILY.xattr.user.overlay.origin": "x",
        "SCHILY.xattr.user.kept": "yes",
    }
    run(make_tar((info, data)), dest)
    assert os.listxattr(dest / "f") == ["user.kept"]


def test_device_nodes_and_fifos(dest: Path) -> None:
    run(make_tar(
        (_info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666), b""),
        (_info("dev/loop0", tarfile.BLKTYPE, devmajor=7, devminor=0, mode=0o660), b""),
        (_info("run/fifo", tarfile.FIFOTYPE, mode=0o600), b""),
    ), dest)
    null = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(null.st_mode)
    assert os.major(null.st_rdev) == 1
    assert os.minor(null.st_rdev) == 3
    assert stat.S_IMODE(null.st_mode) == 0o666
    assert stat.S_ISBLK(os.lstat(dest / "dev/loop0").st_mode)
    assert stat.S_ISFIFO(os.lstat(dest / "run/fifo").st_mode)


def test_devices_are_skipped_without_root(dest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unpack.os, "geteuid", lambda: 1000)
    run(make_tar(
        (_info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3), b""),
        (_info("fifo", tarfile.FIFOTYPE), b""),
        reg("kept", b"x"),
    ), dest)
    assert not (dest / "dev/null").exists()
    assert not (dest / "fifo").exists()
    assert (dest / "kept").read_bytes() == b"x"


def test_whiteouts_become_overlay_whiteouts(dest: Path) -> None:
    run(make_tar(
        dir_("etc/"),
        reg("etc/.wh.shadow"),
        dir_("var/cache/"),
        reg("var/cache/.wh..wh..opq"),
        reg("gone/.wh.deeper"),
        reg(".wh..wh.plnk"),  # AUFS bookkeeping is ignored
    ), dest)
    wh = os.lstat(dest / "etc/shadow")
    assert stat.S_ISCHR(wh.st_mode)
    assert wh.st_rdev == os.makedev(0, 0)
    assert not (dest / "etc/.wh.shadow").exists()
    assert os.getxattr(dest / "var/cache", "trusted.overlay.opaque") == b"y"
    assert stat.S_ISCHR(os.lstat(dest / "gone/deeper").st_mode)
    assert not os.path.lexists(dest / ".wh..wh.plnk")
    assert not os.path.lexists(dest / "plnk")


def test_later_members_replace_earlier_ones(dest: Path) -> None:
    run(make_tar(
        reg("a", b"first"),
        dir_("d/"),
        reg("d/child", b"c"),
        reg("a", b"second"),
        dir_("d/"),  # merging into an existing directory keeps its contents
        sym("b", "a"),
        reg("b", b"not through the link"),
    ), dest)
    assert (dest / "a").read_bytes() == b"second"
    assert (dest / "d/child").read_bytes() == b"c"
    assert not os.path.islink(dest / "b")
    assert (dest / "b").read_bytes() == b"not through the link"


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_compressed_layers_have_the_uncompressed_diff_id(dest: Path, compress: object) -> None:
    raw = make_tar(reg("x", b"payload"))
    stats = run(compress(raw), dest)  # type: ignore[operator]
    assert stats.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert stats.tar_size == len(raw)
    assert (dest / "x").read_bytes() == b"payload"


def test_zstd_without_the_module_is_a_clear_error(dest: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def no_module(name: str) -> object:
        raise ImportError(name)

    monkeypatch.setattr(compression.importlib, "import_module", no_module)
    with pytest.raises(InvalidParameter, match="zstd"):
        run(b"\x28\xb5\x2f\xfd" + b"\x00" * 32, dest)


def test_trailing_bytes_count_in_the_diff_id(dest: Path) -> None:
    raw = make_tar(reg("x", b"1")) + b"\x00" * 4096
    stats = run(raw, dest)
    assert stats.tar_size == len(raw)
    assert stats.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_root_entry_sets_the_layer_root(dest: Path) -> None:
    run(make_tar(dir_("./", mode=0o700, mtime=1234), reg("./f", b"x")), dest)
    assert stat.S_IMODE(os.lstat(dest).st_mode) == 0o700
    assert os.lstat(dest).st_mtime == 1234


# hostile archives -------------------------------------------------------------------


def test_absolute_names_land_inside(dest: Path, outside: Path) -> None:
    run(make_tar(reg(str(outside / "passwd"), b"owned"), reg("/etc/passwd", b"root")), dest)
    assert_untouched(outside)
    assert (dest / str(outside).lstrip("/") / "passwd").read_bytes() == b"owned"
    assert (dest / "etc/passwd").read_bytes() == b"root"


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "./../../../../tmp/evil", ".."])
def test_dotdot_escapes_are_refused(dest: Path, name: str) -> None:
    with pytest.raises(InvalidParameter, match="outside the layer") as info:
        run(make_tar(reg(name, b"x")), dest)
    assert repr(name) in info.value.message
    assert not (dest.parent / "evil").exists()


def test_dotdot_inside_the_layer_is_fine(dest: Path) -> None:
    run(make_tar(reg("a/b/../c", b"x")), dest)
    assert (dest / "a/c").read_bytes() == b"x"


def test_writes_under_a_symlink_stay_in_scope(dest: Path, outside: Path) -> None:
    run(make_tar(
        sym("abs", str(outside)),
        reg("abs/passwd", b"owned"),
        reg("abs/new", b"new"),
        sym("rel", "../../../../../../.."),
        reg("rel/escaped", b"x"),
        sym("cfg", "/etc"),
        reg("cfg/hostname", b"box"),
    ), dest)
    assert_untouched(outside)
    inside = dest / str(outside).lstrip("/")
    assert (inside / "passwd").read_bytes() == b"owned"
    assert (inside / "new").read_bytes() == b"new"
    assert (dest / "escaped").read_bytes() == b"x"
    assert (dest / "etc/hostname").read_bytes() == b"box"
    assert os.readlink(dest / "abs") == str(outside)  # the link itself is kept as written


def test_symlink_loops_are_refused(dest: Path) -> None:
    with pytest.raises(InvalidParameter, match="too many levels of symbolic links"):
        run(make_tar(sym("etc", "/etc"), reg("etc/hostname", b"box")), dest)


def test_final_symlink_is_replaced_not_followed(dest: Path, outside: Path) -> None:
    run(make_tar(sym("f", str(outside / "passwd")), reg("f", b"mine", mode=0o600)), dest)
    assert_untouched(outside)
    assert not os.path.islink(dest / "f")
    assert (dest / "f").read_bytes() == b"mine"


def test_metadata_of_a_symlink_member_never_reaches_its_target(dest: Path,
                                                               outside: Path) -> None:
    run(make_tar(sym("link", str(outside / "passwd"), uid=4242, gid=4242, mtime=5)), dest)
    host = os.stat(outside / "passwd")
    assert host.st_uid != 4242
    assert host.st_mtime != 5
    assert_untouched(outside)


def test_directory_later_replaced_by_a_symlink(dest: Path, outside: Path) -> None:
    # d/ and d/e/ get their times at the end; by then d is a symlink to the host
    run(make_tar(
        dir_("d/", mtime=7),
        dir_("d/e/", mtime=7, mode=0o700),
        sym("d", str(outside)),
    ), dest)
    assert_untouched(outside)
    assert os.path.islink(dest / "d")


def test_hardlink_escapes_are_refused(dest: Path, outside: Path) -> None:
    for target in ["../outside/passwd", "a/../../../outside/passwd"]:
        with pytest.raises(InvalidParameter, match="points outside the layer"):
            run(make_tar(hard("h", target)), dest)
    # absolute and symlinked targets are taken inside the layer: there is nothing there
    with pytest.raises(InvalidParameter, match="not found"):
        run(make_tar(hard("h", str(outside / "passwd"))), dest)
    with pytest.raises(InvalidParameter, match="not found"):
        run(make_tar(sym("s", str(outside)), hard("h", "s/passwd")), dest)
    assert_untouched(outside)
    assert os.stat(outside / "passwd").st_nlink == 1


def test_hardlink_through_in_scope_symlink_links_the_layer_file(dest: Path) -> None:
    run(make_tar(reg("real/file", b"x"), sym("s", "/real"), hard("h", "s/file")), dest)
    assert os.lstat(dest / "h").st_ino == os.lstat(dest / "real/file").st_ino


def test_hardlink_to_a_directory_or_itself_is_refused(dest: Path) -> None:
    with pytest.raises(InvalidParameter, match="directory"):
        run(make_tar(dir_("d/"), hard("h", "d")), dest)
    with pytest.raises(InvalidParameter, match="itself"):
        run(make_tar(reg("f", b"x"), hard("f", "f")), dest)


def test_whiteouts_cannot_escape(dest: Path, outside: Path) -> None:
    run(make_tar(sym("x", str(outside)), reg("x/.wh.passwd")), dest)
    assert_untouched(outside)
    with pytest.raises(InvalidParameter):
        run(make_tar(reg("../.wh.outside")), dest)
    assert (outside).exists()


def test_non_directory_root_member_is_refused(dest: Path) -> None:
    with pytest.raises(InvalidParameter, match="layer root"):
        run(make_tar(sym("./", "/etc")), dest)


def test_garbage_and_truncated_archives(dest: Path) -> None:
    with pytest.raises(InvalidParameter, match="invalid layer archive"):
        run(b"this is not a tarball at all" * 40, dest)
    with pytest.raises(InvalidParameter, match="invalid layer archive"):
        run(b"", dest)
    whole = make_tar(reg("big", os.urandom(100_000)))
    with pytest.raises(InvalidParameter, match="invalid layer archive"):
        run(whole[:20_000], dest)
    with pytest.raises(InvalidParameter, match="invalid layer archive"):
        run(gzip.compress(whole)[:50_000], dest)


def test_parent_that_is_a_file_is_refused(dest: Path) -> None:
    with pytest.raises(InvalidParameter, match="not a directory"):
        run(make_tar(reg("f", b"x"), reg("f/child", b"y")), dest)
