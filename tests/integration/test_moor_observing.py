"""`moor top|diff|stats|cp` against a real moord, checked against the docker CLI's output.

Uses the session `moord` fixture (busybox:latest imported). Each test names its own
containers and removes them afterwards.
"""

from __future__ import annotations

import io
import os
import secrets
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import DOCKER_CLI, Moord

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MOOR_SCRIPT = REPO / ".venv" / "bin" / "moor"


def _moor_argv() -> list[str]:
    return [str(MOOR_SCRIPT)] if MOOR_SCRIPT.exists() else [sys.executable, "-m", "engine.cli"]


def run(daemon: Moord, tool: str, *args: str, stdin: bytes | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """`moor …` or `docker …` against the daemon, bytes in and out."""
    argv = _moor_argv() if tool == "moor" else [DOCKER_CLI]
    return subprocess.run([*argv, *args], env=daemon.env, cwd=cwd or REPO, input=stdin,
                          capture_output=True, timeout=120, check=False)


def ok(daemon: Moord, tool: str, *args: str, **kwargs: Any) -> str:
    result = run(daemon, tool, *args, **kwargs)
    assert result.returncode == 0, (
        f"{tool} {' '.join(args)} failed ({result.returncode}):\n"
        f"stdout: {result.stdout.decode(errors='replace')}\n"
        f"stderr: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode()


@pytest.fixture
def container(moord: Moord) -> Iterator[str]:
    """A running busybox with some files made and removed, ready when this yields."""
    name = f"mo-{secrets.token_hex(3)}"
    script = ("mkdir -p /added /data/sub /m/existing /k/existing && echo x > /added/f"
              " && echo inside > /data/sub/file && echo top > /data/top.txt"
              " && ln -s top.txt /data/link && ln -s /etc/hostname /data/abs"
              " && echo extra:x:5000:5000::/:/bin/sh >> /etc/passwd && rm /bin/vi"
              " && echo ready && exec sleep 300")
    moord.docker("run", "-d", "--name", name, "busybox", "sh", "-c", script)
    try:
        deadline = time.monotonic() + 30
        while "ready" not in moord.docker("logs", name).stdout:
            assert time.monotonic() < deadline, "the container never got ready"
            time.sleep(0.05)
        yield name
    finally:
        moord.docker("rm", "-f", name, check=False)


# --- top / diff ---------------------------------------------------------------------------

def test_top_matches_docker(moord: Moord, container: str) -> None:
    for ps_args in ((), ("-o", "pid,comm,args"), ("-ef",)):
        ours = ok(moord, "moor", "top", container, *ps_args)
        theirs = ok(moord, "docker", "top", container, *ps_args)
        assert ours == theirs, ps_args
    assert "sleep 300" in ok(moord, "moor", "container", "top", container)


def test_diff_matches_docker(moord: Moord, container: str) -> None:
    ours = ok(moord, "moor", "diff", container)
    assert ours == ok(moord, "docker", "diff", container)
    lines = set(ours.splitlines())
    assert {"A /added", "A /added/f", "C /etc/passwd", "D /bin/vi"} <= lines
    assert ok(moord, "moor", "container", "diff", container) == ours


def test_top_and_diff_errors_match_docker(moord: Moord, container: str) -> None:
    for args in (("top", "no-such-container"), ("diff", "no-such-container")):
        ours, theirs = run(moord, "moor", *args), run(moord, "docker", *args)
        assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)
    moord.docker("stop", "-t", "0", container)
    ours, theirs = run(moord, "moor", "top", container), run(moord, "docker", "top", container)
    assert ours.returncode == theirs.returncode == 1
    assert ours.stderr == theirs.stderr
    assert b"is not running" in ours.stderr


# --- stats ---------------------------------------------------------------------------------

def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("   ") if cell.strip()]


def _starts(line: str) -> list[int]:
    """Where each cell of a tabwriter line begins."""
    starts, at = [], 0
    for cell in line.split("   "):
        if cell.strip():
            starts.append(line.index(cell.strip(), at))
        at += len(cell) + 3
    return starts


def test_stats_no_stream_row(moord: Moord) -> None:
    busy = f"mo-busy-{secrets.token_hex(3)}"
    moord.docker("run", "-d", "--name", busy, "--memory", "64m", "busybox", "sh", "-c",
                 "while :; do :; done")
    try:
        header, *rows = ok(moord, "moor", "stats", "--no-stream", busy).splitlines()
        # Column widths follow the row's values (NET I/O grows between two calls), so the
        # docker CLI's header is compared cell by cell and alignment within moor's own table.
        docker_header = ok(moord, "docker", "stats", "--no-stream", busy).splitlines()[0]
        assert _cells(header) == _cells(docker_header)
        assert _starts(header) == _starts(rows[0])
        assert _cells(header) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT",
                                  "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]
        (row,) = rows
        cid, name, cpu, mem, mem_perc, net, block, pids = _cells(row)
        full_id = moord.docker("inspect", "-f", "{{.Id}}", busy).stdout.strip()
        assert (cid, name, pids) == (full_id[:12], busy, "1")
        assert float(cpu.rstrip("%")) > 0.0
        used, limit = mem.split(" / ")
        assert limit == "64MiB"
        assert used.endswith(("B", "KiB", "MiB"))
        assert 0.0 <= float(mem_perc.rstrip("%")) < 100.0
        assert " / " in net
        assert " / " in block

        fmt = "{{.Name}} {{.Container}} {{.MemUsage}} {{.PIDs}}"
        line = ok(moord, "moor", "container", "stats", "--no-stream", "--format", fmt, busy)
        assert line.split()[:2] == [busy, busy]
        assert line.split()[-2:] == ["64MiB", "1"]

        everything = ok(moord, "moor", "stats", "--no-stream", "--format", "{{.Name}}")
        assert busy in everything.split()
    finally:
        moord.docker("rm", "-f", busy, check=False)


def test_stats_no_stream_unknown_container(moord: Moord) -> None:
    ours = run(moord, "moor", "stats", "--no-stream", "no-such-container")
    theirs = run(moord, "docker", "stats", "--no-stream", "no-such-container")
    assert ours.returncode == theirs.returncode == 1
    assert ours.stderr == theirs.stderr
    assert ours.stdout == b""


def test_stats_stream_redraws(moord: Moord, container: str) -> None:
    proc = subprocess.Popen([*_moor_argv(), "stats", "--format", "{{.Name}} {{.PIDs}}",
                             container], env=moord.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        seen = b""
        while seen.count(b"\033[H") < 2:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, proc.stderr.read() if proc.stderr else b""
            seen += chunk
    finally:
        proc.kill()
        proc.wait()
    frame = seen.split(b"\033[H")[1]
    assert frame.startswith(f"{container} 1\033[K\n".encode())
    assert frame.endswith(b"\033[J")


# --- cp --------------------------------------------------------------------------------

def tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every path under `root`: its kind, permission bits, and content or link target."""
    found: dict[str, tuple[str, int, str]] = {}
    if not root.exists() and not root.is_symlink():
        return found
    paths = [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]
    for path in paths:
        st = path.lstat()
        rel = path.relative_to(root).as_posix() if path != root else "."
        if stat.S_ISLNK(st.st_mode):
            found[rel] = ("link", 0, os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            found[rel] = ("dir", stat.S_IMODE(st.st_mode), "")
        else:
            found[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_text())
    return found


def _host_source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("from the host\n")
    (src / "d" / "sub" / "f").write_text("nested\n")
    (src / "d" / "run.sh").write_text("#!/bin/sh\n")
    (src / "d" / "run.sh").chmod(0o755)
    (src / "d" / "link").symlink_to("run.sh")
    return src


def _pull(moord: Moord, container: str, path: str, dest: Path) -> dict[str, tuple[str, int, str]]:
    """What the container has at `path`, copied out with docker cp for comparison."""
    ok(moord, "docker", "cp", f"{container}:{path}", str(dest))
    return tree(dest)


TO_CONTAINER = [
    ("a.txt", "existing/"),            # a file into a directory
    ("a.txt", "existing/renamed.txt"),  # a file to a new name
    ("d", "existing"),                 # a directory into a directory: nested
    ("d", "newdir"),                   # a directory to a missing path: renamed
    ("d/.", "contents"),               # dir/. to a missing path: its contents, renamed
    ("d/.", "existing"),               # dir/. into a directory: its contents
]


def test_cp_into_container_matches_docker(moord: Moord, container: str, tmp_path: Path) -> None:
    src = _host_source(tmp_path)
    for local, target in TO_CONTAINER:
        ok(moord, "moor", "cp", local, f"{container}:/m/{target}", cwd=src)
        ok(moord, "docker", "cp", local, f"{container}:/k/{target}", cwd=src)
    ours = _pull(moord, container, "/m", tmp_path / "ours")
    theirs = _pull(moord, container, "/k", tmp_path / "theirs")
    assert ours == theirs
    assert ours["existing/a.txt"][2] == "from the host\n"
    assert ours["existing/renamed.txt"][2] == "from the host\n"
    assert ours["existing/d/sub/f"][2] == "nested\n"
    assert ours["newdir/sub/f"][2] == "nested\n"
    assert ours["contents/run.sh"][1] == 0o755
    assert ours["existing/link"] == ("link", 0, "run.sh")


FROM_CONTAINER = [
    ("/data", "existing"),              # nests: existing/data/...
    ("/data", "renamed"),               # renamed: renamed/...
    ("/data/.", "existing2"),           # contents into existing2
    ("/data/sub/file", "existing3"),    # a file into a directory
    ("/data/sub/file", "single"),       # a file to a new name
    ("/data/link", "plain-link"),       # a symlink stays a link
    ("/data/.", "fresh-dot"),           # contents to a missing path: renamed, not spilled
]


def test_cp_from_container_matches_docker(moord: Moord, container: str,
                                          tmp_path: Path) -> None:
    for side in ("ours", "theirs"):
        for sub in ("existing", "existing2", "existing3"):
            (tmp_path / side / sub).mkdir(parents=True)
    for path, target in FROM_CONTAINER:
        ok(moord, "moor", "cp", f"{container}:{path}", str(tmp_path / "ours" / target))
        ok(moord, "docker", "cp", f"{container}:{path}", str(tmp_path / "theirs" / target))
    ok(moord, "moor", "cp", "-L", f"{container}:/data/link", str(tmp_path / "ours" / "followed"))
    ok(moord, "docker", "cp", "-L", f"{container}:/data/link",
       str(tmp_path / "theirs" / "followed"))
    ours, theirs = tree(tmp_path / "ours"), tree(tmp_path / "theirs")
    assert ours == theirs
    assert ours["existing/data/sub/file"][2] == "inside\n"
    assert ours["renamed/top.txt"][2] == "top\n"
    assert ours["existing2/sub/file"][2] == "inside\n"
    assert ours["existing3/file"][2] == "inside\n"
    assert ours["single"][2] == "inside\n"
    assert ours["plain-link"] == ("link", 0, "top.txt")  # the link itself, as dockerd sends
    assert ours["fresh-dot/sub/file"][2] == "inside\n"
    assert "sub" not in ours, "dir/. to a missing path spilled into its parent"
    assert ours["followed"][:1] + ours["followed"][2:] == ("file", "top\n")
    assert ours["existing/data/abs"] == ("link", 0, "/etc/hostname")


def test_cp_dir_dot_to_a_missing_host_path(moord: Moord, container: str, tmp_path: Path) -> None:
    ok(moord, "moor", "cp", f"{container}:/data/.", str(tmp_path / "fresh"))
    got = tree(tmp_path / "fresh")
    assert got["sub/file"][2] == "inside\n"
    assert got["top.txt"][2] == "top\n"
    assert not (tmp_path / "sub").exists()


def _tar_names(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: (tf.extractfile(m).read() if m.isreg() else b"")  # type: ignore[union-attr]
                for m in tf}


def test_cp_tar_streams(moord: Moord, container: str, tmp_path: Path) -> None:
    ours = run(moord, "moor", "cp", f"{container}:/data", "-")
    theirs = run(moord, "docker", "cp", f"{container}:/data", "-")
    assert ours.returncode == theirs.returncode == 0
    assert _tar_names(ours.stdout) == _tar_names(theirs.stdout)
    assert _tar_names(ours.stdout)["data/sub/file"] == b"inside\n"

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("piped/hello.txt")
        info.size = 6
        tf.addfile(info, io.BytesIO(b"hello\n"))
    ok(moord, "moor", "cp", "-", f"{container}:/m/existing", stdin=buf.getvalue())
    ok(moord, "docker", "cp", "-", f"{container}:/k/existing", stdin=buf.getvalue())
    assert moord.docker("exec", container, "cat", "/m/existing/piped/hello.txt").stdout == "hello\n"
    assert _pull(moord, container, "/m/existing/piped", tmp_path / "o") == _pull(
        moord, container, "/k/existing/piped", tmp_path / "t")


CP_ERRORS = [
    ("{c}:/no/such", "{tmp}/x"),
    ("{c}:/data", "{tmp}/missing-dir/x"),
    ("{c}:/data", "{c}:/tmp"),
    ("{tmp}/a", "{tmp}/b"),
    ("{tmp}/no-such-file", "{c}:/tmp"),
    ("-", "{c}:/data/top.txt"),
    ("{c}:/data/top.txt", "{tmp}/nodir/"),
]


def test_cp_errors_match_docker(moord: Moord, container: str, tmp_path: Path) -> None:
    for src, dst in CP_ERRORS:
        args = (src.format(c=container, tmp=tmp_path), dst.format(c=container, tmp=tmp_path))
        ours, theirs = run(moord, "moor", "cp", *args), run(moord, "docker", "cp", *args)
        assert ours.returncode == theirs.returncode == 1, (args, ours.stderr)
        assert ours.stderr == theirs.stderr, args
