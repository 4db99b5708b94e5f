"""`docker stats` samples from a cgroup tree, v1 and v2, faked as files in a directory
(the boundary: the kernel's cgroupfs). This host is cgroup v1, so the v2 reading is
shown here; the integration tests read the real v1 files."""

from __future__ import annotations

from pathlib import Path

from engine.containers.stats import sample
from engine.runtime.cgroups import CgroupLayout

REL = "moorage/abc"


def write(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


def test_v2(tmp_path: Path) -> None:
    write(tmp_path / REL, {
        "cpu.stat": "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 0\n",
        "memory.current": "10485760\n",
        "memory.peak": "20971520\n",
        "memory.max": "33554432\n",
        "memory.stat": "anon 4096\nfile 8192\ninactive_file 4096\n",
        "io.stat": "8:0 rbytes=1000 wbytes=2000 rios=1 wios=2\n8:16 rbytes=1 wbytes=2 rios=1 wios=1\n",
        "pids.current": "3\n",
        "pids.max": "max\n",
    })
    layout = CgroupLayout(version=2, hybrid=False, v2_controllers=("cpu", "memory", "io", "pids"),
                          v1_mounts=(), unified_mount=tmp_path)
    s = sample(layout, "/" + REL, pid=0)
    assert (s.cpu_total_ns, s.cpu_user_ns, s.cpu_kernel_ns) == (2_500_000, 2_000_000, 500_000)
    assert (s.memory_usage, s.memory_max_usage, s.memory_limit) == (10485760, 20971520, 33554432)
    assert s.memory_stats["inactive_file"] == 4096
    assert (s.io_read_bytes, s.io_write_bytes) == (1001, 2002)
    assert (s.pids_current, s.pids_limit) == (3, 0)  # 0: no limit
    assert s.system_cpu_ns > 0
    assert s.networks == {}


def test_v2_without_a_memory_limit_reports_the_host_s_memory(tmp_path: Path) -> None:
    write(tmp_path / REL, {"memory.max": "max\n", "memory.current": "1\n"})
    layout = CgroupLayout(2, False, (), (), tmp_path)
    host_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal:"))
    assert sample(layout, REL, pid=0).memory_limit == host_kib * 1024


def test_v1(tmp_path: Path) -> None:
    mounts = {name: tmp_path / name for name in ("cpu,cpuacct", "memory", "pids", "blkio")}
    write(mounts["cpu,cpuacct"] / REL, {"cpuacct.usage": "7000000\n",
                                        "cpuacct.usage_percpu": "4000000 3000000\n",
                                        "cpuacct.stat": "user 3\nsystem 1\n"})
    write(mounts["memory"] / REL, {"memory.usage_in_bytes": "5000\n",
                                   "memory.max_usage_in_bytes": "9000\n",
                                   "memory.limit_in_bytes": "16777216\n",
                                   "memory.stat": "total_inactive_file 100\ncache 200\n"})
    write(mounts["pids"] / REL, {"pids.current": "2\n", "pids.max": "40\n"})
    write(mounts["blkio"] / REL, {"blkio.throttle.io_service_bytes":
                                  "8:0 Read 300\n8:0 Write 400\n8:0 Total 700\nTotal 700\n"})
    layout = CgroupLayout(1, False, (), tuple(mounts.items()), None)
    s = sample(layout, REL, pid=0)
    assert (s.cpu_total_ns, s.percpu_ns) == (7_000_000, (4_000_000, 3_000_000))
    assert s.cpu_user_ns > s.cpu_kernel_ns > 0
    assert (s.memory_usage, s.memory_max_usage, s.memory_limit) == (5000, 9000, 16777216)
    assert s.memory_stats == {"total_inactive_file": 100, "cache": 200}
    assert (s.pids_current, s.pids_limit) == (2, 40)
    assert (s.io_read_bytes, s.io_write_bytes) == (300, 400)
