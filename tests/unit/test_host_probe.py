"""What moord says when the host can't run containers.

The probe's boundary with the host (root or not, the cgroup layout, the kernel's
filesystems and modprobe, the binaries) is faked here, so the answers do not depend on
the machine the tests run on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import DaemonConfig
from engine.errors import HostNotReady
from engine.kernel import modules
from engine.runtime import cgroups, host
from engine.runtime.cgroups import CgroupLayout
from engine.runtime.host import probe_host

PURE_V2 = CgroupLayout(2, False, ("cpu", "memory", "pids"), (), Path("/sys/fs/cgroup"))
REAL_ENSURE_FILESYSTEM = modules.ensure_filesystem
HYBRID_BLOCKING_CRUN = CgroupLayout(1, True, ("hugetlb",), (("memory", Path("/sys/fs/cgroup/memory")),),
                                    Path("/sys/fs/cgroup/unified"))


def _program(path: Path, output: str, status: int = 0) -> str:
    path.write_text(f"#!/bin/sh\necho '{output}' >&2\necho '{output}'\nexit {status}\n")
    path.chmod(0o755)
    return str(path)


class FakeKernel:
    """/proc/filesystems and modprobe: a file the fake modprobe adds `overlay` to."""

    def __init__(self, tmp_path: Path, *, overlay: bool, modprobe_works: bool = True) -> None:
        self.filesystems = tmp_path / "filesystems"
        self.filesystems.write_text("nodev\tsysfs\nnodev\tproc\n\text4\n"
                                    + ("nodev\toverlay\n" if overlay else ""))
        self.modprobe = tmp_path / "modprobe"
        if modprobe_works:
            self.modprobe.write_text(f"#!/bin/sh\necho 'nodev\t'\"$1\" >> {self.filesystems}\n")
        else:
            self.modprobe.write_text("#!/bin/sh\necho \"modprobe: FATAL: Module $1 not found in "
                                     "directory /lib/modules/6.1.0-test\" >&2\nexit 1\n")
        self.modprobe.chmod(0o755)

    def ensure_filesystem(self, fstype: str, module: str) -> tuple[bool, str | None]:
        return REAL_ENSURE_FILESYSTEM(fstype, module, self.filesystems, str(self.modprobe))


@pytest.fixture
def fake_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DaemonConfig:
    """A root, pure cgroup v2 host with overlayfs and working conmon, crun and runc."""
    monkeypatch.setattr(host, "_is_root", lambda: True)
    monkeypatch.setattr(cgroups, "detect", lambda: PURE_V2)
    monkeypatch.setattr(host, "boot_id", lambda: "0" * 32)
    use_kernel(monkeypatch, FakeKernel(tmp_path, overlay=True))
    seccomp = tmp_path / "seccomp.json"
    seccomp.write_text("{}")
    return DaemonConfig(conmon_path=_program(tmp_path / "conmon", "conmon version 2.1.6"),
                        crun_path=_program(tmp_path / "crun", "crun version 1.8.1"),
                        runc_path=_program(tmp_path / "runc", "runc version 1.1.5"),
                        init_path=_program(tmp_path / "tini", "tini version 0.19.0"),
                        seccomp_profile=str(seccomp))


def use_kernel(monkeypatch: pytest.MonkeyPatch, kernel: FakeKernel) -> None:
    monkeypatch.setattr(modules, "ensure_filesystem", kernel.ensure_filesystem)


def test_hybrid_host_with_v2_controllers_blocks_crun() -> None:
    message = HYBRID_BLOCKING_CRUN.crun_blocker()
    assert message is not None
    assert "hugetlb" in message
    assert "mount -t cgroup -o hugetlb" in message


def test_pure_v2_and_fixed_hybrid_are_fine() -> None:
    assert PURE_V2.crun_blocker() is None
    assert CgroupLayout(1, True, (), (), Path("/sys/fs/cgroup/unified")).crun_blocker() is None


def test_a_ready_host_gets_a_profile(fake_host: DaemonConfig) -> None:
    profile = probe_host(fake_host)
    assert profile.default_runtime == "crun"
    assert profile.runtimes["crun"].version == "1.8.1"
    assert profile.conmon_version == "2.1.6"
    assert profile.cgroups == PURE_V2
    assert profile.warnings == ()


def test_not_root_is_named(fake_host: DaemonConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "_is_root", lambda: False)
    with pytest.raises(HostNotReady, match="moord must run as root"):
        probe_host(fake_host)


def test_missing_conmon_is_named(fake_host: DaemonConfig, tmp_path: Path) -> None:
    config = DaemonConfig(conmon_path=str(tmp_path / "nothing"), crun_path=fake_host.crun_path,
                          seccomp_profile=fake_host.seccomp_profile)
    with pytest.raises(HostNotReady, match="conmon is not installed"):
        probe_host(config)


def test_no_usable_runtime_is_named(fake_host: DaemonConfig, tmp_path: Path) -> None:
    config = DaemonConfig(conmon_path=fake_host.conmon_path, crun_path=str(tmp_path / "no-crun"),
                          runc_path=str(tmp_path / "no-runc"), seccomp_profile=fake_host.seccomp_profile)
    with pytest.raises(HostNotReady, match="no OCI runtime can run containers"):
        probe_host(config)


def test_missing_runtime_falls_back_with_a_warning(fake_host: DaemonConfig, tmp_path: Path) -> None:
    config = DaemonConfig(conmon_path=fake_host.conmon_path, crun_path=str(tmp_path / "no-crun"),
                          runc_path=fake_host.runc_path, seccomp_profile=fake_host.seccomp_profile,
                          init_path=fake_host.init_path)
    profile = probe_host(config)
    assert profile.default_runtime == "runc"
    assert any("using runc instead" in w for w in profile.warnings)


def test_a_hybrid_host_crun_refuses_falls_back_to_runc(fake_host: DaemonConfig,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "detect", lambda: HYBRID_BLOCKING_CRUN)
    profile = probe_host(fake_host)
    assert profile.default_runtime == "runc"
    assert not profile.runtimes["crun"].usable
    assert "hugetlb" in profile.runtimes["crun"].problem


def test_overlay_module_is_loaded_when_missing(fake_host: DaemonConfig, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "k").mkdir()
    kernel = FakeKernel(tmp_path / "k", overlay=False)
    use_kernel(monkeypatch, kernel)
    probe_host(fake_host)
    assert modules.filesystem_registered("overlay", kernel.filesystems)


def test_overlay_that_cannot_be_loaded_is_named(fake_host: DaemonConfig, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "k").mkdir()
    use_kernel(monkeypatch, FakeKernel(tmp_path / "k", overlay=False, modprobe_works=False))
    with pytest.raises(HostNotReady) as info:
        probe_host(fake_host)
    message = str(info.value)
    assert "the kernel has no overlay filesystem and moord could not load it" in message
    assert "Module overlay not found in directory /lib/modules/6.1.0-test" in message
    assert "CONFIG_OVERLAY_FS" in message


def test_filesystems_are_read_by_name(tmp_path: Path) -> None:
    filesystems = tmp_path / "filesystems"
    filesystems.write_text("nodev\toverlayish\n\text4\n")
    assert not modules.filesystem_registered("overlay", filesystems)
    assert modules.filesystem_registered("ext4", filesystems)
    assert not modules.filesystem_registered("ext4", tmp_path / "absent")


def test_a_missing_modprobe_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(modules, "SBIN_DIRS", ())
    assert modules.load_module("overlay") == "modprobe is not installed (apt-get install kmod)"
    problem = modules.load_module("overlay", modprobe=str(tmp_path / "modprobe"))
    assert problem is not None
    assert "`modprobe overlay` could not run" in problem
