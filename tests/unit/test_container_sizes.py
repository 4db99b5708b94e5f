"""A writable layer's size as dockerd counts it (non-directories by lstat, links once);
export's leftovers cleared at start-up."""

from __future__ import annotations

import os
from pathlib import Path

from engine.containers.sizes import layer_size


def test_layer_size_counts_files_links_once_and_symlinks(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f").write_bytes(b"x" * 100)
    os.link(tmp_path / "d" / "e" / "f", tmp_path / "hard")
    (tmp_path / "s").symlink_to("/d/e/f")  # 6 bytes of target
    (tmp_path / "empty").touch()
    os.mknod(tmp_path / "whiteout", 0o600 | 0o020000, os.makedev(0, 0))
    assert layer_size(tmp_path) == 106
    assert layer_size(tmp_path / "missing") == 0


def test_stale_export_mount_points_are_cleared(tmp_path: Path) -> None:
    from engine.containers.export import clear_stale_exports

    clear_stale_exports(tmp_path)  # nothing there: nothing to do
    (tmp_path / "export" / "abc-1234").mkdir(parents=True)
    clear_stale_exports(tmp_path)
    assert list((tmp_path / "export").iterdir()) == []
