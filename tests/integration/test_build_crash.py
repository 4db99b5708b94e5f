"""moord SIGKILLed in the middle of a `docker build` (classic builder): after the restart
nothing of that build is left (no step container, process, mount, cgroup, volume,
workspace or half-written layer, no tag), and the same Dockerfile builds again (reusing
the steps committed before the crash).

Three moments, each reached by watching for it, not by timing: while a RUN step's
process runs (its container is running), while a RUN step's writable layer is written
out as a tarball (`images/tmp/commit-*` exists), and while that tarball is unpacked into
the layer store (`images/layers/.tmp-*` exists)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import crashcheck
from tests.support.daemon import DOCKER_CLI, Moord

pytestmark = pytest.mark.integration

BUILD_TIMEOUT = 600.0
TAG = "crashed:latest"

RUNNING = """\
FROM busybox
VOLUME /data
RUN echo one > /one
ARG NAP=60
RUN sleep $NAP
RUN echo after > /after
"""

#: a writable layer big enough that writing and unpacking it take a while
BIG = """\
FROM busybox
RUN echo one > /one
RUN dd if=/dev/zero of=/big bs=1M count=200 2>/dev/null
RUN echo after > /after
"""


def _start_build(d: Moord, context: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([DOCKER_CLI, "build", "-t", TAG, *args, str(context)],
                            env={**d.env, "DOCKER_BUILDKIT": "0"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _build(d: Moord, context: Path, *args: str) -> str:
    result = subprocess.run([DOCKER_CLI, "build", "-t", TAG, *args, str(context)],
                            env={**d.env, "DOCKER_BUILDKIT": "0"}, capture_output=True,
                            text=True, timeout=BUILD_TIMEOUT)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{d.log_tail(30)}"
    return result.stdout


def _wait_for(what: str, found: Callable[[], object], build: subprocess.Popen[str],
              d: Moord, poll: float = 0.002) -> object:
    """Poll until `found()` is truthy; the build ending first means the moment was missed."""
    deadline = time.monotonic() + BUILD_TIMEOUT
    while True:
        value = found()
        if value:
            return value
        if build.poll() is not None:
            out = build.stdout.read() if build.stdout else ""
            raise AssertionError(f"the build ended before {what}:\n{out}\n{d.log_tail(30)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {BUILD_TIMEOUT:.0f} s\n{d.log_tail(30)}")
        time.sleep(poll)


def _entries(directory: Path, prefix: str) -> list[str]:
    try:
        return [n for n in os.listdir(directory) if n.startswith(prefix)]
    except FileNotFoundError:
        return []


def _big_layer_in_the_works(d: Moord, moment: str) -> bool:
    """Is the `dd` step's layer being written out (`commit`: a tarball in images/tmp
    already past 1 MiB) or unpacked (`unpack`: its /big in a staging layer)? Earlier
    steps' small layers go through the same places."""
    images = d.data_root / "images"
    if moment == "commit":
        for name in _entries(images / "tmp", "commit-"):
            try:
                if (images / "tmp" / name).stat().st_size > 1 << 20:
                    return True
            except FileNotFoundError:
                pass
        return False
    return any((images / "layers" / name / "diff" / "big").exists()
               for name in _entries(images / "layers", ".tmp-"))


def _running_step(d: Moord) -> str:
    """The ID of a running container whose command is the `sleep` step, or ""."""
    out = d.docker("ps", "--no-trunc", "--format", "{{.ID}} {{.Command}}").stdout
    return next((line.split()[0] for line in out.splitlines() if "sleep" in line), "")


def _leftovers(d: Moord) -> dict[str, object]:
    """Everything of this daemon that should be gone once no container exists."""
    k = crashcheck.scan(d)
    images = d.data_root / "images"
    left: dict[str, object] = {
        "containers": d.docker("ps", "-aq").stdout.split(),
        "volumes": d.docker("volume", "ls", "-q").stdout.split(),
        "conmons": k.conmons, "cgroup pids": k.cgroup_pids,
        "mounts": crashcheck.mount_points_under(d.root),
        "crun state": sorted(k.crun_dirs), "cgroups": sorted(k.cgroup_dirs),
        "container dirs": sorted(k.container_dirs), "records": sorted(k.stored_ids),
        "build workspaces": _entries(d.data_root / "build", ""),
        "image tmp": _entries(images / "tmp", ""),
        "unfinished layers": _entries(images / "layers", ".tmp-"),
    }
    return {name: value for name, value in left.items() if value}


def _killed_mid_build(d: Moord, context: Path, reached: Callable[[], object]) -> str:
    """Start the build, SIGKILL moord once `reached()` says so (its value is returned),
    and let the build's client fail."""
    build = _start_build(d, context)
    value = _wait_for("the moment to kill", reached, build, d)
    d.kill9()
    build.communicate(timeout=60)
    assert build.returncode != 0
    return str(value)


def _check_recovered(d: Moord, context: Path, *args: str) -> None:
    assert _leftovers(d) == {}
    untagged = d.docker("image", "inspect", TAG, check=False)
    assert untagged.returncode != 0, "the half-built image was tagged"
    out = _build(d, context, *args)
    assert "Using cache" in out  # `RUN echo one`, committed before the crash
    assert d.docker("run", "--rm", TAG, "cat", "/one", "/after").stdout == "one\nafter\n"
    assert _leftovers(d) == {}


def _ready(d: Moord, tmp_path: Path, dockerfile: str) -> tuple[Moord, Path]:
    """`d` started with busybox, and a build context holding `dockerfile`."""
    d.start()
    d.import_busybox()
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    return d, context


def test_kill9_while_a_run_step_runs(fresh_moord: Callable[[], Moord], tmp_path: Path) -> None:
    d, context = _ready(fresh_moord(), tmp_path, RUNNING)
    step = _killed_mid_build(d, context, lambda: _running_step(d))
    # the step's process outlives moord (conmon keeps it): recovery must end it
    pids = crashcheck.scan(d).cgroup_pids.get(step, ())
    assert pids
    assert all(crashcheck.is_alive(p) for p in pids)
    conmons = crashcheck.scan(d).conmons.get(step, ())
    assert conmons
    killed_at = time.time()
    d.start()
    assert not any(crashcheck.is_alive(p) for p in (*pids, *conmons))
    events = d.docker("events", "--since", f"{killed_at:.3f}", "--until", f"{time.time():.3f}",
                      "--filter", f"container={step}", "--format",
                      "{{.Action}} {{index .Actor.Attributes \"reason\"}}").stdout.split("\n")
    assert [e.strip() for e in events if e.strip()] == ["die build-abandoned", "destroy"]
    _check_recovered(d, context, "--build-arg", "NAP=0")


@pytest.mark.parametrize("moment", ["commit", "unpack"])
def test_kill9_while_a_run_step_is_committed(fresh_moord: Callable[[], Moord], tmp_path: Path,
                                             moment: str) -> None:
    d, context = _ready(fresh_moord(), tmp_path, BIG)
    _killed_mid_build(d, context, lambda: _big_layer_in_the_works(d, moment))
    d.start()
    _check_recovered(d, context)
