"""users.resolve_user: Docker's --user / --group-add rules, read safely from the rootfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import InvalidParameter
from engine.runtime import users
from engine.runtime.users import ProcessUser, lookup_user, parse_group, parse_passwd, resolve_user

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
# a comment line
+nis-line
broken:x:notanumber:0::/:/bin/sh
"""

GROUP = """\
root:x:0:
wheel:x:10:root,alice
audio:x:29:alice
staff:x:50:
alice:x:1000:
nogroup:x:65534:
video:x:44:bob
"""


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    return root


def test_parsers_skip_junk() -> None:
    names = [e.name for e in parse_passwd(PASSWD)]
    assert names == ["root", "daemon", "alice", "nobody"]
    wheel = next(g for g in parse_group(GROUP) if g.name == "wheel")
    assert wheel.gid == 10
    assert wheel.members == ("root", "alice")


def test_empty_user_is_root_with_roots_groups(rootfs: Path) -> None:
    assert resolve_user(rootfs, "", []) == ProcessUser(0, 0, (0, 10), "/root")


def test_by_name(rootfs: Path) -> None:
    assert resolve_user(rootfs, "alice", []) == ProcessUser(1000, 1000, (1000, 10, 29),
                                                            "/home/alice")


def test_by_uid_uses_passwd_entry(rootfs: Path) -> None:
    assert resolve_user(rootfs, "1000", []) == ProcessUser(1000, 1000, (1000, 10, 29),
                                                           "/home/alice")


def test_numeric_uid_absent_from_passwd_is_fine(rootfs: Path) -> None:
    assert resolve_user(rootfs, "4242", []) == ProcessUser(4242, 0, (0,), "/")


def test_numeric_uid_and_gid_absent(rootfs: Path) -> None:
    assert resolve_user(rootfs, "4242:4343", []) == ProcessUser(4242, 4343, (4343,), "/")


def test_name_and_group_name_sets_gid_without_supplementary(rootfs: Path) -> None:
    assert resolve_user(rootfs, "alice:staff", []) == ProcessUser(1000, 50, (50,), "/home/alice")


def test_uid_and_group_name(rootfs: Path) -> None:
    assert resolve_user(rootfs, "1000:audio", []) == ProcessUser(1000, 29, (29,), "/home/alice")


def test_uid_gid_numeric_existing(rootfs: Path) -> None:
    assert resolve_user(rootfs, "65534:65534", []) == ProcessUser(65534, 65534, (65534,),
                                                                  "/nonexistent")


def test_unknown_name_uses_dockers_message(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter) as info:
        resolve_user(rootfs, "mallory", [])
    assert info.value.message == "unable to find user mallory: no matching entries in passwd file"


def test_unknown_group_name(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter, match="unable to find group nope: no matching entries"):
        resolve_user(rootfs, "alice:nope", [])


def test_out_of_range_ids(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter, match="range"):
        resolve_user(rootfs, "-1", [])
    with pytest.raises(InvalidParameter, match="range"):
        resolve_user(rootfs, "0:4294967296", [])


def test_group_add_names_numbers_and_dedup(rootfs: Path) -> None:
    user = resolve_user(rootfs, "alice", ["staff", "4000", "10", "audio"])
    assert user.additional_gids == (1000, 10, 29, 50, 4000)


def test_group_add_unknown_name(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter, match="Unable to find group ghosts"):
        resolve_user(rootfs, "", ["ghosts"])


def test_no_passwd_or_group_files(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    assert resolve_user(tmp_path, "", []) == ProcessUser(0, 0, (0,), "/")
    assert resolve_user(tmp_path, "1000:1000", ["7"]) == ProcessUser(1000, 1000, (1000, 7), "/")
    with pytest.raises(InvalidParameter, match="unable to find user alice"):
        resolve_user(tmp_path, "alice", [])


def test_lookup_is_pure() -> None:
    assert lookup_user("alice", parse_passwd(PASSWD), None) == ProcessUser(
        1000, 1000, (1000,), "/home/alice")


# --- a hostile root filesystem -----------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A 'host' passwd outside the rootfs that must never be read."""
    path = tmp_path / "host-passwd"
    path.write_text("evil:x:4242:4242::/evil:/bin/sh\n")
    return path


def test_absolute_symlink_to_host_file_is_resolved_inside_rootfs(
        tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink(str(outside), root / "etc/passwd")
    with pytest.raises(InvalidParameter, match="unable to find user evil"):
        resolve_user(root, "evil", [])


def test_relative_symlink_escape_is_clamped_to_rootfs(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink("../../../../../host-passwd", root / "etc/passwd")
    with pytest.raises(InvalidParameter, match="unable to find user evil"):
        resolve_user(root, "evil", [])
    # ... and it lands on <rootfs>/host-passwd, the container's view of that path
    (root / "host-passwd").write_text("evil:x:7:7::/in-rootfs:/bin/sh\n")
    assert resolve_user(root, "evil", []) == ProcessUser(7, 7, (7,), "/in-rootfs")


def test_symlinked_etc_directory_stays_inside(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    os.symlink(str(tmp_path), root / "etc")  # /etc -> the host directory holding host-passwd
    with pytest.raises(InvalidParameter, match="unable to find user evil"):
        resolve_user(root, "evil", [])


def test_symlink_within_rootfs_is_followed(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "lib/passwd").write_text("svc:x:123:456::/srv:/bin/sh\n")
    os.symlink("/lib/passwd", root / "etc/passwd")
    assert resolve_user(root, "svc", []) == ProcessUser(123, 456, (456,), "/srv")


def test_symlink_loop_is_an_error_not_a_hang(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc/passwd", root / "etc/passwd")
    with pytest.raises(InvalidParameter, match="symbolic links"):
        resolve_user(root, "", [])


def test_fifo_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.mkfifo(root / "etc/passwd")  # reading it would block for ever
    assert resolve_user(root, "", []) == ProcessUser(0, 0, (0,), "/")


def test_directory_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc/passwd").mkdir(parents=True)
    assert resolve_user(root, "5", []) == ProcessUser(5, 0, (0,), "/")


def test_huge_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "MAX_FILE_BYTES", 1024)
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("x" * 5000)
    with pytest.raises(InvalidParameter, match="larger than"):
        resolve_user(root, "", [])
