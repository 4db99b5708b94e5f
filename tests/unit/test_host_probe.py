"""What moord says when the host can't run containers."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import DaemonConfig
from engine.errors import HostNotReady
from engine.runtime.cgroups import CgroupLayout
from engine.runtime.host import probe_host


def test_hybrid_host_with_v2_controllers_blocks_crun() -> None:
    layout = CgroupLayout(1, True, ("hugetlb",), (("memory", Path("/sys/fs/cgroup/memory")),),
                          Path("/sys/fs/cgroup/unified"))
    message = layout.crun_blocker()
    assert message is not None
    assert "hugetlb" in message
    assert "mount -t cgroup -o hugetlb" in message


def test_pure_v2_and_fixed_hybrid_are_fine() -> None:
    assert CgroupLayout(2, False, ("cpu", "memory"), (), Path("/sys/fs/cgroup")).crun_blocker() is None
    assert CgroupLayout(1, True, (), (), Path("/sys/fs/cgroup/unified")).crun_blocker() is None


def test_missing_conmon_is_named(tmp_path: Path) -> None:
    config = DaemonConfig(conmon_path=str(tmp_path / "conmon"))
    with pytest.raises(HostNotReady, match="conmon is not installed"):
        probe_host(config)


def test_no_usable_runtime_is_named(tmp_path: Path) -> None:
    config = DaemonConfig(crun_path=str(tmp_path / "crun"), runc_path=str(tmp_path / "runc"))
    with pytest.raises(HostNotReady, match="no OCI runtime can run containers"):
        probe_host(config)


def test_missing_runtime_falls_back_with_a_warning(tmp_path: Path) -> None:
    config = DaemonConfig(crun_path=str(tmp_path / "crun"))
    profile = probe_host(config)
    assert profile.default_runtime == "runc"
    assert any("using runc instead" in w for w in profile.warnings)
