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


def test_cp_into_a_read_only_container_is_refused_as_dockerd_does(moord: Moord,
                                                                   tmp_path: Path) -> None:
    """`--read-only`: the root filesystem is refused in dockerd's words (a 400, no host
    path in it), running or stopped; a read-write volume is still writable, a read-only
    one refused in its own words."""
    name = f"cpro-{secrets.token_hex(3)}"
    rw, ro = f"cprw-{secrets.token_hex(3)}", f"cpro-{secrets.token_hex(3)}"
    moord.docker("run", "-d", "--name", name, "--read-only", "-v", f"{rw}:/data",
                 "-v", f"{ro}:/ro:ro", "busybox", "sleep", "300")
    src = tmp_path / "f.txt"
    src.write_text("x\n")
    try:
        for state in ("running", "stopped"):
            for dest in ("/tmp/", "/", "/etc/copied.txt"):
                refused = moord.docker("cp", str(src), f"{name}:{dest}", check=False)
                assert refused.returncode == 1, (state, dest)
                assert refused.stderr.strip() == \
                    "Error response from daemon: container rootfs is marked read-only"
            refused = moord.docker("cp", str(src), f"{name}:/ro/", check=False)
            assert refused.stderr.strip() == \
                "Error response from daemon: mounted volume is marked read-only"
            moord.docker("cp", str(src), f"{name}:/data/{state}.txt")
            if state == "running":
                moord.docker("stop", "-t", "0", name)
        moord.docker("start", name)
        assert moord.docker("exec", name, "ls", "/data").stdout.split() == \
            ["running.txt", "stopped.txt"]
    finally:
        moord.docker("rm", "-f", name)
        moord.docker("volume", "rm", rw, ro, check=False)
    import docker

    client = docker.DockerClient(base_url=moord.host, timeout=60)
    try:
        c = client.containers.run("busybox", "sleep 300", detach=True, read_only=True)
        try:
            with pytest.raises(docker.errors.APIError) as info:
                c.put_archive("/tmp", b"\0" * 1024)
            assert info.value.status_code == 400
            assert info.value.explanation == "container rootfs is marked read-only"
        finally:
            c.remove(force=True)
    finally:
        client.close()


def test_cp_to_and_from_the_root_of_a_running_container(moord: Moord, tmp_path: Path) -> None:
    """The root of a running container is a directory to `docker cp` (the CLI used to
    panic on `cp f c:/`), and its archive leaves out what /proc, /sys and /dev hold."""
    name = f"cproot-{secrets.token_hex(3)}"
    moord.docker("run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        src = tmp_path / "at-root.txt"
        src.write_text("top\n")
        moord.docker("cp", str(src), f"{name}:/")
        assert moord.docker("exec", name, "cat", "/at-root.txt").stdout == "top\n"
        import subprocess

        from tests.support.daemon import DOCKER_CLI

        archive = subprocess.run([DOCKER_CLI, "cp", f"{name}:/", "-"], env=moord.env,
                                 capture_output=True, timeout=120, check=True).stdout
        import io
        import tarfile

        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            names = tar.getnames()
        assert "./at-root.txt" in names
        assert "./bin/busybox" in names
        assert "./proc" in names
        assert not [n for n in names if n.startswith(("./proc/", "./sys/", "./dev/"))]
    finally:
        moord.docker("rm", "-f", name)
