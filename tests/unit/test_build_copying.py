"""COPY/ADD of local files: sources, globs, destination rules, cache key, layer tar."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from engine.build.copying import (
    content_hash,
    destination,
    is_archive,
    resolve_sources,
    write_copy_layer,
)
from engine.errors import InvalidParameter


def _ctx(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "ctx"
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
        os.utime(root / name, (1_000_000, 1_000_000))
    return root


def _layer(root: Path, sources: list[str], dest: str, *, workdir: str = "/",
           owner: tuple[int, int] | None = None, chmod: int | None = None,
           extract: bool = False, image: dict[str, str] | None = None,
           ) -> dict[str, tarfile.TarInfo]:
    out = io.BytesIO()
    known = image or {}
    write_copy_layer(root, sources, dest, workdir, out, owner=owner, chmod=chmod,
                     extract_archives=extract, existing=known.get)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        return {m.name: m for m in tf.getmembers()}


def test_resolve_plain_paths_and_trimming(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {"a.txt": "", "d/b.txt": ""})
    assert resolve_sources(root, ["a.txt", "/d", "./d/b.txt", "."]) == ["a.txt", "d", "d/b.txt", "."]


def test_resolve_globs_in_walk_order(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {"b.txt": "", "a.txt": "", "c.md": "", "d/e.txt": "", "[x].txt": ""})
    assert resolve_sources(root, ["*.txt"]) == ["[x].txt", "a.txt", "b.txt"]
    assert resolve_sources(root, ["?/*.txt"]) == ["d/e.txt"]
    assert resolve_sources(root, ["[ab].txt"]) == ["a.txt", "b.txt"]
    assert resolve_sources(root, ["[^a].txt"]) == ["b.txt"]
    assert resolve_sources(root, ["[[]x].txt"]) == ["[x].txt"]
    assert resolve_sources(root, ["\\[x\\]*"]) == ["[x].txt"]


def test_resolve_errors_use_moby_wording(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {"a": ""})
    with pytest.raises(InvalidParameter, match=r"^COPY failed: forbidden path outside the build "
                                               r"context: \.\./x \(\)$"):
        resolve_sources(root, ["../x"])
    with pytest.raises(InvalidParameter, match=r"^ADD failed: file not found in build context or "
                                               r"excluded by \.dockerignore: stat nope: file does "
                                               r"not exist$"):
        resolve_sources(root, ["nope"], instruction="ADD")
    with pytest.raises(InvalidParameter, match="no source files were specified"):
        resolve_sources(root, ["*.go"])


def test_symlink_sources_resolve_in_scope(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {"real/f": "data"})
    (tmp_path / "hostfile").write_text("secret")
    os.symlink(str(tmp_path / "hostfile"), root / "escape")
    os.symlink("real/f", root / "link")
    with pytest.raises(InvalidParameter, match="file not found"):
        resolve_sources(root, ["escape"])
    layer = _layer(root, ["link"], "/out/")
    assert layer["out/link"].isreg()  # followed, named like the link
    assert layer["out/link"].size == 4


def test_destination_rules() -> None:
    assert destination("x", "/app") == "/app/x"
    assert destination("x/", "/app") == "/app/x/"
    assert destination(".", "/app") == "/app"
    assert destination("/abs/", "/app") == "/abs/"
    assert destination("./", "") == "/"


def test_file_to_new_path_dir_slash_and_existing_dir(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {"a.txt": "hello"})
    assert set(_layer(root, ["a.txt"], "/new/name")) == {"new", "new/name"}
    assert set(_layer(root, ["a.txt"], "/new/")) == {"new", "new/a.txt"}
    assert set(_layer(root, ["a.txt"], "/opt", image={"/opt": "dir"})) == {"opt/a.txt"}
    assert set(_layer(root, ["a.txt"], ".", workdir="/app", image={"/app": "dir"})) == {"app/a.txt"}


def test_several_sources_need_a_slash(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {"a": "", "b": ""})
    with pytest.raises(InvalidParameter, match="must be a directory and end with a /"):
        _layer(root, ["a", "b"], ".")
    assert set(_layer(root, ["a", "b"], "d/", workdir="/w")) == {"w", "w/d", "w/d/a", "w/d/b"}


def test_directory_source_copies_contents_and_keeps_symlinks(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {"src/x": "1", "src/sub/y": "2"})
    os.symlink("/etc/passwd", root / "src/pw")
    layer = _layer(root, ["src"], "/dst", image={"/dst": "dir"})
    assert set(layer) == {"dst/x", "dst/sub", "dst/sub/y", "dst/pw"}
    assert layer["dst/pw"].issym()
    assert layer["dst/pw"].linkname == "/etc/passwd"


def test_owner_chmod_and_mtime(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {"d/f": "x"})
    os.chmod(root / "d/f", 0o600)
    plain = _layer(root, ["d"], "/a/b/")
    assert (plain["a"].uid, plain["a"].gid, plain["a"].mode) == (0, 0, 0o755)
    assert (plain["a/b/f"].uid, plain["a/b/f"].mode, plain["a/b/f"].mtime) == (0, 0o600, 1_000_000)
    owned = _layer(root, ["d"], "/a/b/", owner=(1000, 1001), chmod=0o640)
    assert (owned["a"].uid, owned["a"].gid, owned["a"].mode) == (1000, 1001, 0o755)
    assert (owned["a/b/f"].uid, owned["a/b/f"].gid, owned["a/b/f"].mode) == (1000, 1001, 0o640)
    assert owned["a/b/f"].uname == ""


def test_file_in_image_where_a_parent_must_go_is_refused(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {"a": ""})
    with pytest.raises(InvalidParameter, match="not a directory"):
        _layer(root, ["a"], "/etc/hosts/x", image={"/etc": "dir", "/etc/hosts": "file"})


def _tarball(path: Path, members: dict[str, bytes], *, uid: int = 7) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid, info.mode, info.mtime = len(data), uid, uid, 0o700, 5
            tf.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue()))


def test_add_extracts_archives_keeping_their_owners(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {})
    _tarball(root / "app.tar.gz", {"bin/tool": b"elf", ".wh.kept": b"plain"})
    assert is_archive(root / "app.tar.gz")
    layer = _layer(root, ["app.tar.gz"], "/opt", extract=True, owner=(1, 1))
    assert set(layer) == {"opt", "opt/bin", "opt/bin/tool", "opt/.wh.kept"}
    assert (layer["opt/bin/tool"].uid, layer["opt/bin/tool"].mode) == (7, 0o700)
    copied = _layer(root, ["app.tar.gz"], "/opt/", extract=False)
    assert set(copied) == {"opt", "opt/app.tar.gz"}


def test_add_refuses_escaping_archives(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {})
    _tarball(root / "evil.tar", {"../../x": b"boom"})
    with pytest.raises(InvalidParameter, match="outside"):
        _layer(root, ["evil.tar"], "/opt", extract=True)


def test_non_archives_are_copied_by_add(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {"notes.gz": "not gzip"})
    (root / "text.gz").write_bytes(gzip.compress(b"plain text, not a tar" * 40))
    assert not is_archive(root / "notes.gz")
    assert not is_archive(root / "text.gz")
    assert set(_layer(root, ["text.gz"], "/x/", extract=True)) == {"x", "x/text.gz"}


def test_content_hash_tracks_content_not_mtime(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {"d/a": "one", "d/b": "two"})
    first = content_hash(root, ["d"])
    os.utime(root / "d/a", (5, 5))
    assert content_hash(root, ["d"]) == first
    (root / "d/a").write_text("ONE")
    assert content_hash(root, ["d"]) != first
    (root / "d/a").write_text("one")
    assert content_hash(root, ["d"]) == first
    os.chmod(root / "d/a", 0o600)
    assert content_hash(root, ["d"]) != first


def test_content_hash_sees_names_and_link_targets(tmp_path: Path) -> None:
    root = _ctx(tmp_path, {"a": "x", "b": "x"})
    assert content_hash(root, ["a"]) != content_hash(root, ["b"])
    os.symlink("a", root / "l1")
    os.symlink("b", root / "l2")
    (root / "d").mkdir()
    os.symlink("a", root / "d/l")
    before = content_hash(root, ["d"])
    os.unlink(root / "d/l")
    os.symlink("b", root / "d/l")
    assert content_hash(root, ["d"]) != before


def test_layer_is_deterministic(tmp_path: Path) -> None:
    outs = []
    for n in range(2):
        root = _ctx(tmp_path / str(n), {"z": "1", "a/b/c": "2", "a/d": "3"})
        out = io.BytesIO()
        outs.append((write_copy_layer(root, ["."], "/app/", "/", out, owner=None, chmod=None,
                                      extract_archives=False, existing=lambda _p: None),
                     out.getvalue()))
    assert outs[0] == outs[1]
    layer_tar, raw = outs[0]
    assert layer_tar.size == len(raw)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        names = tf.getnames()
    assert names == ["app", "app/a", "app/a/b", "app/a/b/c", "app/a/d", "app/z"]
