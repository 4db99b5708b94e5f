"""Run specs from build_spec with the real crun and runc on a busybox rootfs.

Needs root, crun, runc, busybox (static) and tini-static; missing ones fail the test
with a message saying what to install. Each container gets the cgroup
/moorage-spec-test/<id>, removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.runtime import rlimits as rl
from engine.runtime.security import CAPABILITIES
from engine.runtime.spec import SpecInputs, build_spec, host_facts
from engine.runtime.users import resolve_user

pytestmark = pytest.mark.integration

CGROUP_PARENT = "moorage-spec-test"
RUNTIME_CANDIDATES = {"crun": ("/usr/bin/crun",), "runc": ("/usr/sbin/runc", "/usr/bin/runc")}


def need_binary(name: str, *candidates: str, package: str = "") -> str:
    found = shutil.which(name) or next((c for c in candidates if os.access(c, os.X_OK)), None)
    if found is None:
        pytest.fail(f"{name} is not installed; this test needs it (apt install {package or name})")
    return found


@pytest.fixture(scope="module", autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("running containers needs root: run the integration tests as root")


@pytest.fixture(params=sorted(RUNTIME_CANDIDATES))
def runtime(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return need_binary(name, *RUNTIME_CANDIDATES[name])


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """busybox with every applet, plus root and nobody in /etc/passwd."""
    busybox = need_binary("busybox", "/usr/bin/busybox", "/bin/busybox", package="busybox-static")
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root"):
        (root / d).mkdir(parents=True)
    shutil.copy2(busybox, root / "bin/busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                     "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:root\nnogroup:x:65534:\n")
    return root


def _cgroup_mounts() -> list[Path]:
    mounts = []
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] in ("cgroup", "cgroup2"):
                mounts.append(Path(fields[1]))
    return mounts


def _remove_cgroups(cid: str) -> None:
    for mount in _cgroup_mounts():
        for path in (mount / CGROUP_PARENT / cid, mount / CGROUP_PARENT):
            with contextlib.suppress(OSError):  # busy parent: another test still uses it
                path.rmdir()


@pytest.fixture
def run(runtime: str, rootfs: Path, tmp_path: Path) -> Iterator[Any]:
    """run(script, **spec_inputs) -> CompletedProcess of `<runtime> run`, stdout+stderr text."""
    created: list[str] = []
    state = tmp_path / "state"

    def _run(script: str, user: str = "", **kw: Any) -> subprocess.CompletedProcess[str]:
        cid = "moorspec-" + secrets.token_hex(6)
        created.append(cid)
        bundle = tmp_path / cid
        bundle.mkdir()
        fields: dict[str, Any] = {
            "args": ["/bin/sh", "-c", script],
            "rootfs": str(rootfs),
            "hostname": "moorspec",
            "user": resolve_user(rootfs, user, []),
            "cgroups_path": f"/{CGROUP_PARENT}/{cid}",
        }
        fields.update(kw)
        (bundle / "config.json").write_text(json.dumps(build_spec(SpecInputs(**fields))))
        return subprocess.run(
            [runtime, "--root", str(state), "run", "--bundle", str(bundle), cid],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=60, cwd=bundle)

    yield _run
    for cid in created:
        subprocess.run([runtime, "--root", str(state), "delete", "-f", cid],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        _remove_cgroups(cid)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"runtime failed ({result.returncode}):\n{result.stdout}"
    return result.stdout


def status_field(output: str, name: str) -> str:
    for line in output.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} in:\n{output}")


def test_defaults_identity_caps_hostname(run: Any) -> None:
    out = ok(run("id; cat /proc/self/status; echo host=$(hostname); echo home=$HOME"))
    assert "uid=0(root) gid=0(root) groups=0(root)" in out
    assert status_field(out, "CapEff") == "00000000a80425fb"
    assert status_field(out, "CapBnd") == "00000000a80425fb"
    assert status_field(out, "CapInh") == "0000000000000000"
    assert status_field(out, "Seccomp") == "2"
    assert status_field(out, "NoNewPrivs") == "0"
    assert "host=moorspec" in out
    assert "home=/root" in out


def test_named_user(run: Any) -> None:
    out = ok(run("id; grep CapEff /proc/self/status; echo home=$HOME", user="nobody"))
    assert "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)" in out
    assert status_field(out, "CapEff") == "0000000000000000"
    assert "home=/nonexistent" in out


def test_proc_sys_is_read_only_and_masks_apply(run: Any) -> None:
    out = ok(run("echo x > /proc/sys/kernel/hostname; echo rc=$?; "
                 "echo interrupts=$(wc -c < /proc/interrupts); "
                 "echo port=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start)"))
    assert "rc=1" in out
    assert "Read-only file system" in out
    with open("/proc/interrupts") as f:
        assert f.read()  # the host's has content ...
    assert "interrupts=0" in out  # ... the container's is masked by /dev/null
    assert "port=0" in out  # Docker's sysctl in the container's own netns


def test_init_is_pid_1(run: Any) -> None:
    tini = need_binary("tini-static", "/usr/bin/tini-static", package="tini")
    out = ok(run("echo comm=$(cat /proc/1/comm); echo me=$$", init_binary=tini))
    assert "comm=docker-init" in out
    assert "me=1" not in out
    plain = ok(run("echo comm=$(cat /proc/1/comm); echo me=$$"))
    assert "comm=sh" in plain
    assert "me=1" in plain


def test_init_reaps_and_passes_exit_status(run: Any) -> None:
    tini = need_binary("tini-static", "/usr/bin/tini-static", package="tini")
    result = run("exit 7", init_binary=tini)
    assert result.returncode == 7, result.stdout


def test_seccomp_profile_blocks_swapon(run: Any) -> None:
    # With CAP_SYS_ADMIN the kernel would try the file and say EINVAL (no swap
    # signature); the profile refuses swapon outright with EPERM.
    confined = ok(run("swapon /etc/passwd; grep Seccomp: /proc/self/status",
                      cap_add=["SYS_ADMIN"]))
    assert "Operation not permitted" in confined
    assert status_field(confined, "Seccomp") == "2"
    unconfined = ok(run("swapon /etc/passwd; grep Seccomp: /proc/self/status",
                        cap_add=["SYS_ADMIN"], seccomp_profile=None))
    assert "Invalid argument" in unconfined
    assert status_field(unconfined, "Seccomp") == "0"


def test_read_only_rootfs(run: Any) -> None:
    out = ok(run("touch /newfile; echo rc=$?; touch /dev/shm/ok && echo shm=ok",
                 readonly_rootfs=True))
    assert "rc=1" in out
    assert "Read-only file system" in out
    assert "shm=ok" in out


def test_nofile_is_clamped_to_the_host(run: Any) -> None:
    expected = rl.rlimits_for_spec()
    (nofile,) = [r for r in expected if r.type == "RLIMIT_NOFILE"]
    out = ok(run("echo soft=$(ulimit -Sn) hard=$(ulimit -Hn)"))
    assert f"soft={nofile.soft} hard={nofile.hard}" in out


def test_privileged(run: Any) -> None:
    out = ok(run("grep -E 'CapEff|Seccomp:' /proc/self/status; grep ' /sys ' /proc/mounts",
                 privileged=True))
    mask = sum(1 << CAPABILITIES.index(c) for c in host_facts().capabilities)
    assert int(status_field(out, "CapEff"), 16) == mask
    assert status_field(out, "Seccomp") == "0"
    assert "sysfs /sys sysfs rw" in out
