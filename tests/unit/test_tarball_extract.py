"""The one safe extractor under each kind of rules: what every archive gets (escapes
refused, nothing written through a symlink) and what the rules choose (owners, names,
devices, xattrs, the root entry)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from engine.build.context import CONTEXT_RULES
from engine.errors import InvalidParameter
from engine.images.unpack import LAYER_RULES
from engine.tarball.extract import ExtractRules, Owner, extract_tar

pytestmark = pytest.mark.needs_root("owners and device nodes need root")

CP_RULES = ExtractRules.foreign("archive", absolute_names=True)
ALL_RULES = [LAYER_RULES, CONTEXT_RULES, CP_RULES]


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object
           ) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime, info.uid, info.gid = kind, len(data), 1_500_000_000, 4242, 4343
    info.mode = 0o4755 if kind == tarfile.REGTYPE else 0o755
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def tar(*members: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    buf.seek(0)
    return buf


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "dest"


@pytest.mark.parametrize("rules", ALL_RULES, ids=lambda r: r.label)
@pytest.mark.parametrize(("members", "message"), [
    ([member("../x")], "is outside the"),
    ([member("a/../../x")], "is outside the"),
    ([member("h", tarfile.LNKTYPE, linkname="../x")], "points outside the"),
    ([member("h", tarfile.LNKTYPE, linkname="missing")], "not found"),
    ([member("d", tarfile.DIRTYPE), member("h", tarfile.LNKTYPE, linkname="d")],
     "points to a directory"),
    ([member("f", data=b"x"), member("f/g", data=b"y")], "parent is not a directory"),
])
def test_escapes_and_bad_links_are_refused_by_every_rule(
        dest: Path, rules: ExtractRules, members: list[tuple[tarfile.TarInfo, bytes]],
        message: str) -> None:
    with pytest.raises(InvalidParameter, match=f"^invalid {rules.label}: .*{message}"):
        extract_tar(tar(*members), dest, rules)
    assert not (dest.parent / "x").exists()


@pytest.mark.parametrize("rules", ALL_RULES, ids=lambda r: r.label)
def test_nothing_is_written_through_a_symlink(tmp_path: Path, rules: ExtractRules) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    extract_tar(tar(member("up", tarfile.SYMTYPE, linkname=str(outside)),
                    member("up/evil", data=b"boom"),
                    member("link", tarfile.SYMTYPE, linkname=str(outside / "f")),
                    member("link", data=b"replaced")), dest, rules)
    assert list(outside.iterdir()) == []
    assert (dest / outside.relative_to("/") / "evil").read_bytes() == b"boom"
    assert not os.path.islink(dest / "link")


def test_the_scope_word_in_errors(dest: Path) -> None:
    with pytest.raises(InvalidParameter,
                       match=r"^invalid layer archive: member '\.\./x' is outside the layer$"):
        extract_tar(tar(member("../x")), dest, LAYER_RULES)
    with pytest.raises(InvalidParameter, match=r"is outside the build context$"):
        extract_tar(tar(member("../x")), dest, CONTEXT_RULES)


def test_absolute_names_are_stripped_or_refused(dest: Path) -> None:
    extract_tar(tar(member("/etc/f", data=b"x")), dest, CP_RULES)
    assert (dest / "etc/f").read_bytes() == b"x"
    with pytest.raises(InvalidParameter, match="has an absolute name"):
        extract_tar(tar(member("/etc/g")), dest, CONTEXT_RULES)
    with pytest.raises(InvalidParameter, match="points outside the build context"):
        extract_tar(tar(member("h", tarfile.LNKTYPE, linkname="/etc/f")), dest, CONTEXT_RULES)


def test_owners_applied_or_reported(tmp_path: Path) -> None:
    members = (member("d", tarfile.DIRTYPE), member("d/f", data=b"x"))
    assert extract_tar(tar(*members), tmp_path / "layer", LAYER_RULES) == {}
    f = os.lstat(tmp_path / "layer/d/f")
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (4242, 4343, 0o4755)
    owners = extract_tar(tar(*members), tmp_path / "ctx", CONTEXT_RULES)
    assert owners == {"d": Owner(4242, 4343), "d/f": Owner(4242, 4343)}
    f = os.lstat(tmp_path / "ctx/d/f")
    assert (f.st_uid, stat.S_IMODE(f.st_mode)) == (0, 0o4755)
    assert os.lstat(tmp_path / "ctx/d").st_mtime == 1_500_000_000


def test_devices_xattrs_and_the_root_entry_only_by_the_rules(tmp_path: Path) -> None:
    members = (member("./", tarfile.DIRTYPE, mode=0o700),
               member("null", tarfile.CHRTYPE, devmajor=1, devminor=3),
               member("f", data=b"x", pax_headers={"SCHILY.xattr.user.kept": "1",
                                                   "SCHILY.xattr.trusted.overlay.opaque": "y"}))
    layer = tmp_path / "layer"
    extract_tar(tar(*members), layer, LAYER_RULES)
    assert stat.S_ISCHR(os.lstat(layer / "null").st_mode)
    assert os.listxattr(layer / "f") == ["user.kept"]
    assert stat.S_IMODE(os.lstat(layer).st_mode) == 0o700
    ctx = tmp_path / "ctx"
    ctx.mkdir(mode=0o755)
    extract_tar(tar(*members), ctx, CONTEXT_RULES)
    assert not os.path.lexists(ctx / "null")
    assert os.listxattr(ctx / "f") == []
    assert stat.S_IMODE(os.lstat(ctx).st_mode) == 0o755


def test_other_tar_types_are_skipped_without_touching_anything(dest: Path) -> None:
    volume_header = b"V"  # GNU tar's: no file behind it
    extract_tar(tar(member("v", data=b"keep"), member("v", volume_header)), dest, LAYER_RULES)
    assert (dest / "v").read_bytes() == b"keep"
