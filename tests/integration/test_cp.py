"""`docker cp` both ways, running and stopped containers, and paths that try to escape."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.support.daemon import Moord

pytestmark = pytest.mark.integration


def test_cp_both_ways(moord: Moord, tmp_path: Path) -> None:
    name = f"cp-{secrets.token_hex(3)}"
    moord.docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                 "mkdir -p /data/sub && echo inside > /data/sub/file && sleep 300")
    try:
        src = tmp_path / "in.txt"
        src.write_text("from the host\n")
        moord.docker("cp", str(src), f"{name}:/tmp/")
        assert moord.docker("exec", name, "cat", "/tmp/in.txt").stdout == "from the host\n"
        moord.docker("cp", str(src), f"{name}:/tmp/renamed.txt")
        assert moord.docker("exec", name, "cat", "/tmp/renamed.txt").stdout == "from the host\n"
        out = tmp_path / "out"
        for _ in range(50):
            if moord.docker("exec", name, "test", "-e", "/data/sub/file", check=False).returncode == 0:
                break
        moord.docker("cp", f"{name}:/data", str(out))
        assert (out / "sub" / "file").read_text() == "inside\n"
        moord.docker("cp", f"{name}:/data/sub/file", str(tmp_path / "single"))
        assert (tmp_path / "single").read_text() == "inside\n"
        missing = moord.docker("cp", f"{name}:/no/such", str(tmp_path / "x"), check=False)
        assert missing.returncode != 0
        assert "Could not find the file" in missing.stderr
        # a path that climbs out stays inside the container's root
        escaped = moord.docker("cp", f"{name}:/../../../../etc/hostname", str(tmp_path / "h"),
                               check=False)
        if escaped.returncode == 0:
            assert (tmp_path / "h").read_text() != Path("/etc/hostname").read_text()
        # into a stopped container: there when it starts again
        moord.docker("stop", "-t", "0", name)
        moord.docker("cp", str(src), f"{name}:/stopped.txt")
        moord.docker("start", name)
        assert moord.docker("exec", name, "cat", "/stopped.txt").stdout == "from the host\n"
    finally:
        moord.docker("rm", "-f", name, check=False)


def test_cp_reaches_volumes_and_tmpfs_of_a_running_container(moord: Moord, tmp_path: Path) -> None:
    """As with Docker: the copy sees the container's mounts, not only its image layers."""
    name = f"cpv-{secrets.token_hex(3)}"
    volume = f"cpvol-{secrets.token_hex(3)}"
    moord.docker("run", "-d", "--name", name, "-v", f"{volume}:/data", "--tmpfs", "/scratch",
                 "busybox", "sleep", "300")
    try:
        src = tmp_path / "note.txt"
        src.write_text("into the volume\n")
        moord.docker("cp", str(src), f"{name}:/data/")
        moord.docker("cp", str(src), f"{name}:/scratch/")
        assert moord.docker("exec", name, "cat", "/data/note.txt", "/scratch/note.txt").stdout == (
            "into the volume\n" * 2)
        moord.docker("exec", name, "sh", "-c", "echo made inside > /scratch/made")
        moord.docker("cp", f"{name}:/scratch/made", str(tmp_path / "made"))
        assert (tmp_path / "made").read_text() == "made inside\n"
        # the volume has it, seen from another container
        other = moord.docker("run", "--rm", "-v", f"{volume}:/v", "busybox", "cat", "/v/note.txt")
        assert other.stdout == "into the volume\n"
    finally:
        moord.docker("rm", "-f", name, check=False)
        moord.docker("volume", "rm", volume, check=False)


def test_cp_reaches_the_volumes_of_a_stopped_container(moord: Moord, tmp_path: Path) -> None:
    """dockerd mounts a stopped container's volumes for the copy; so does moord, and it
    leaves nothing mounted afterwards."""
    name = f"cps-{secrets.token_hex(3)}"
    volume = f"cpsvol-{secrets.token_hex(3)}"
    bind_dir = tmp_path / "bound"
    bind_dir.mkdir()
    (bind_dir / "from-host").write_text("bound file\n")
    moord.docker("create", "--name", name, "-v", f"{volume}:/data",
                 "-v", f"{bind_dir}:/bound:ro", "busybox", "cat", "/data/note.txt")
    try:
        src = tmp_path / "note.txt"
        src.write_text("into a stopped container's volume\n")
        moord.docker("cp", str(src), f"{name}:/data/")
        moord.docker("cp", f"{name}:/bound/from-host", str(tmp_path / "back"))
        assert (tmp_path / "back").read_text() == "bound file\n"
        readonly = moord.docker("cp", str(src), f"{name}:/bound/", check=False)
        assert readonly.returncode != 0
        assert not (bind_dir / "note.txt").exists()
        full_id = moord.docker("inspect", "--format", "{{.Id}}", name).stdout.strip()
        with open("/proc/self/mountinfo") as f:
            assert full_id not in f.read(), "the copy left a mount behind"
        moord.docker("start", "-a", name)
        assert moord.docker("logs", name).stdout == "into a stopped container's volume\n"
    finally:
        moord.docker("rm", "-f", name, check=False)
        moord.docker("volume", "rm", volume, check=False)
