"""build_spec: the OCI config.json with Docker's defaults; rlimits and security options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from engine.containers.model import Ulimit
from engine.errors import InvalidParameter
from engine.limits import Resources
from engine.runtime import rlimits as rl
from engine.runtime.devices import Device, host_devices
from engine.runtime.ocimounts import Mount, merge_tmpfs_options
from engine.runtime.seccomp import parse_profile
from engine.runtime.security import (
    CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    parse_security_opt,
    select_seccomp,
)
from engine.runtime.spec import HostFacts, SpecInputs, build_spec
from engine.runtime.users import ProcessUser

HOST = HostFacts(
    capabilities=CAPABILITIES,
    cgroup_v2=False,
    thermal_throttle_paths=("/sys/devices/system/cpu/cpu0/thermal_throttle",
                            "/sys/devices/system/cpu/cpu1/thermal_throttle"),
    machine="x86_64",
    kernel=(6, 1),
)
# A Docker-style profile: mount only with CAP_SYS_ADMIN.
PROFILE = parse_profile(json.dumps({
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
    "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
    ],
}))
NOFILE = (rl.Rlimit("RLIMIT_NOFILE", 1024, 4096),)


def inputs(**kw: Any) -> SpecInputs:
    base: dict[str, Any] = {"args": ["/bin/sh"], "host": HOST, "seccomp_profile": PROFILE,
                            "rlimits": NOFILE}
    base.update(kw)
    return SpecInputs(**base)


def spec(**kw: Any) -> dict[str, Any]:
    return build_spec(inputs(**kw))


def mount(s: dict[str, Any], dest: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in s["mounts"] if m["destination"] == dest]
    assert len(found) == 1, f"{dest}: {found}"
    return found[0]


def cap_mask(caps: list[str]) -> int:
    return sum(1 << CAPABILITIES.index(c) for c in caps)


# --- shape ---------------------------------------------------------------------------


def test_shape_of_a_default_spec() -> None:
    s = spec(hostname="abc123", domainname="example.org", cgroups_path="/moorage/abc")
    json.dumps(s)  # JSON-ready
    assert s["ociVersion"] == "1.0.2"
    assert s["root"] == {"path": "rootfs", "readonly": False}
    assert s["hostname"] == "abc123"
    assert s["domainname"] == "example.org"
    p = s["process"]
    assert p["terminal"] is False
    assert "consoleSize" not in p
    assert p["user"] == {"uid": 0, "gid": 0, "umask": 0o022}
    assert p["args"] == ["/bin/sh"]
    assert p["cwd"] == "/"
    assert p["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "HOSTNAME=abc123", "HOME=/"]
    assert p["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}]
    assert p["noNewPrivileges"] is False
    assert p["oomScoreAdj"] == 0
    linux = s["linux"]
    assert linux["cgroupsPath"] == "/moorage/abc"
    assert [n["type"] for n in linux["namespaces"]] == ["pid", "network", "ipc", "uts", "mount"]
    assert "rootfsPropagation" not in linux
    assert "annotations" not in s


def test_user_groups_and_home() -> None:
    s = spec(user=ProcessUser(1000, 1000, (1000, 10), "/home/alice"), cwd="/work")
    assert s["process"]["user"] == {"uid": 1000, "gid": 1000, "umask": 0o022,
                                    "additionalGids": [1000, 10]}
    assert "HOME=/home/alice" in s["process"]["env"]
    assert s["process"]["cwd"] == "/work"


def test_env_rules() -> None:
    s = spec(hostname="h", env=["PATH=/opt/bin", "FOO=1", "HOME=/custom", "HOSTNAME"])
    assert s["process"]["env"] == ["PATH=/opt/bin", "FOO=1", "HOME=/custom"]


def test_terminal_sets_term_and_console_size() -> None:
    s = spec(terminal=True, console_size=(40, 120))
    assert s["process"]["terminal"] is True
    assert s["process"]["consoleSize"] == {"height": 40, "width": 120}
    assert "TERM=xterm" in s["process"]["env"]
    s = spec(terminal=True, env=["TERM=vt100"])
    assert "TERM=vt100" in s["process"]["env"]
    assert "TERM=xterm" not in s["process"]["env"]
    assert "consoleSize" not in s["process"]


def test_no_command_and_relative_cwd_are_errors() -> None:
    with pytest.raises(InvalidParameter, match="No command specified"):
        spec(args=[])
    with pytest.raises(InvalidParameter, match="needs to be an absolute path"):
        spec(cwd="work")


def test_misc_process_settings() -> None:
    s = spec(no_new_privileges=True, oom_score_adj=500, annotations={"a": "b"},
             readonly_rootfs=True, rootfs="/abs/rootfs")
    assert s["process"]["noNewPrivileges"] is True
    assert s["process"]["oomScoreAdj"] == 500
    assert s["annotations"] == {"a": "b"}
    assert s["root"] == {"path": "/abs/rootfs", "readonly": True}


# --- capabilities --------------------------------------------------------------------------


def test_default_capabilities_are_dockers_14() -> None:
    caps = spec()["process"]["capabilities"]
    assert caps["bounding"] == list(DEFAULT_CAPABILITIES)
    assert caps["effective"] == caps["permitted"] == caps["bounding"]
    assert caps["inheritable"] == []
    assert caps["ambient"] == []
    assert len(caps["bounding"]) == 14
    assert cap_mask(caps["effective"]) == 0xA80425FB


@pytest.mark.parametrize("name", ["sys_admin", "SYS_ADMIN", "CAP_SYS_ADMIN", "cap_sys_admin",
                                  "Sys_Admin"])
def test_cap_add_any_spelling(name: str) -> None:
    bounding = spec(cap_add=[name])["process"]["capabilities"]["bounding"]
    assert bounding == [*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"]


def test_cap_drop() -> None:
    bounding = spec(cap_drop=["net_raw", "CAP_MKNOD"])["process"]["capabilities"]["bounding"]
    assert "CAP_NET_RAW" not in bounding
    assert "CAP_MKNOD" not in bounding
    assert len(bounding) == 12


def test_cap_add_all_minus_drops() -> None:
    bounding = spec(cap_add=["ALL"], cap_drop=["sys_admin"])["process"]["capabilities"]["bounding"]
    assert bounding == [c for c in CAPABILITIES if c != "CAP_SYS_ADMIN"]


def test_cap_drop_all_keeps_only_adds() -> None:
    caps = spec(cap_drop=["all"], cap_add=["chown", "kill"])["process"]["capabilities"]
    assert caps["bounding"] == ["CAP_CHOWN", "CAP_KILL"]


def test_cap_add_duplicate_of_default_is_not_repeated() -> None:
    bounding = spec(cap_add=["chown"])["process"]["capabilities"]["bounding"]
    assert bounding == list(DEFAULT_CAPABILITIES)


def test_invalid_capability() -> None:
    with pytest.raises(InvalidParameter, match='unknown capability: "CAP_FOO"'):
        spec(cap_add=["foo"])
    with pytest.raises(InvalidParameter, match="unknown capability"):
        spec(cap_drop=["CAP_NOPE"])


def test_capability_missing_from_moord_bounding_set() -> None:
    host = attrs.evolve(HOST, capabilities=tuple(c for c in CAPABILITIES
                                                 if c != "CAP_SYS_RESOURCE"))
    with pytest.raises(InvalidParameter, match="not available in the current environment"):
        spec(host=host, cap_add=["sys_resource"])
    assert "CAP_SYS_RESOURCE" not in spec(host=host, privileged=True)["process"][
        "capabilities"]["bounding"]


def test_seccomp_follows_capabilities() -> None:
    def allowed(s: dict[str, Any]) -> set[str]:
        return {n for r in s["linux"]["seccomp"]["syscalls"] for n in r["names"]}

    assert "mount" not in allowed(spec())
    assert "mount" in allowed(spec(cap_add=["SYS_ADMIN"]))
    assert spec()["linux"]["seccomp"]["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]


def test_unconfined_seccomp() -> None:
    assert "seccomp" not in spec(seccomp_profile=None)["linux"]


# --- privileged ----------------------------------------------------------------------------


def test_privileged() -> None:
    s = spec(privileged=True, cap_drop=["chown"])
    caps = s["process"]["capabilities"]
    assert caps["bounding"] == list(CAPABILITIES)
    linux = s["linux"]
    assert "maskedPaths" not in linux
    assert "readonlyPaths" not in linux
    assert "seccomp" not in linux
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "ro" not in mount(s, "/sys")["options"]
    assert "ro" not in mount(s, "/sys/fs/cgroup")["options"]


def test_writable_cgroups_option() -> None:
    assert "ro" not in mount(spec(writable_cgroups=True), "/sys/fs/cgroup")["options"]
    assert "ro" in mount(spec(privileged=True, writable_cgroups=False),
                         "/sys/fs/cgroup")["options"]


# --- init ----------------------------------------------------------------------------------


def test_init_wraps_args_and_mounts_the_binary() -> None:
    s = spec(args=["sleep", "10"], init_binary="/usr/bin/tini-static")
    assert s["process"]["args"] == ["/sbin/docker-init", "--", "sleep", "10"]
    assert mount(s, "/sbin/docker-init") == {
        "destination": "/sbin/docker-init", "type": "bind", "source": "/usr/bin/tini-static",
        "options": ["bind", "ro"]}


@pytest.mark.parametrize("pid_ns", ["host", "/proc/42/ns/pid"])
def test_no_init_outside_a_private_pid_namespace(pid_ns: str) -> None:
    s = spec(args=["sleep", "10"], init_binary="/usr/bin/tini-static", pid_ns=pid_ns)
    assert s["process"]["args"] == ["sleep", "10"]
    assert not [m for m in s["mounts"] if m["destination"] == "/sbin/docker-init"]


def test_init_mount_comes_after_a_user_mount_of_its_parent() -> None:
    s = spec(init_binary="/tini", mounts=[Mount.bind("/host/sbin", "/sbin")])
    dests = [m["destination"] for m in s["mounts"]]
    assert dests.index("/sbin") < dests.index("/sbin/docker-init")


# --- masks and devices -------------------------------------------------------------------


def test_masked_and_readonly_paths() -> None:
    linux = spec()["linux"]
    assert linux["maskedPaths"] == [*DEFAULT_MASKED_PATHS, *HOST.thermal_throttle_paths]
    assert "/proc/kcore" in linux["maskedPaths"]
    assert "/proc/interrupts" in linux["maskedPaths"]
    assert linux["readonlyPaths"] == list(DEFAULT_READONLY_PATHS)
    assert "/proc/sys" in linux["readonlyPaths"]


def test_masked_paths_override() -> None:
    linux = spec(masked_paths=(), readonly_paths=("/proc/sys",))["linux"]
    assert linux["maskedPaths"] == []
    assert linux["readonlyPaths"] == ["/proc/sys"]


def test_default_device_rules() -> None:
    rules = spec()["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    allowed = [(r["type"], r["major"], r.get("minor")) for r in rules[1:] if r["allow"]]
    assert allowed == [("c", 1, 5), ("c", 1, 3), ("c", 1, 9), ("c", 1, 8), ("c", 5, 0),
                       ("c", 5, 1), ("c", 136, None), ("c", 5, 2)]
    assert rules[-1] == {"allow": False, "type": "c", "major": 10, "minor": 229,
                         "access": "rwm"}
    assert all(r["access"] == "rwm" for r in rules)


def test_extra_device() -> None:
    s = spec(devices=[Device("/dev/fuse", "c", 10, 229, permissions="rw")])
    assert s["linux"]["devices"] == [{"path": "/dev/fuse", "type": "c", "major": 10,
                                      "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0}]
    assert s["linux"]["resources"]["devices"][-1] == {
        "allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}


def test_host_devices_lists_real_nodes() -> None:
    devices = {d.path: d for d in host_devices()}
    assert devices["/dev/null"].type == "c"
    assert (devices["/dev/null"].major, devices["/dev/null"].minor) == (1, 3)
    assert "/dev/console" not in devices
    assert not [p for p in devices if p.startswith("/dev/pts/")]


# --- namespaces and sysctls ------------------------------------------------------------------


def namespaces(s: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {n["type"]: n for n in s["linux"]["namespaces"]}


def test_network_modes() -> None:
    assert namespaces(spec())["network"] == {"type": "network"}
    assert "network" not in namespaces(spec(network_ns="host"))
    joined = spec(network_ns="/run/netns/moor-abc")
    assert namespaces(joined)["network"] == {"type": "network", "path": "/run/netns/moor-abc"}


def test_other_namespace_modes() -> None:
    s = spec(pid_ns="host", ipc_ns="/proc/7/ns/ipc", uts_ns="host", hostname="h")
    ns = namespaces(s)
    assert "pid" not in ns
    assert "uts" not in ns
    assert ns["ipc"] == {"type": "ipc", "path": "/proc/7/ns/ipc"}
    assert "hostname" not in s  # runtimes refuse a hostname without a UTS namespace
    assert "HOSTNAME=h" in s["process"]["env"]
    assert namespaces(spec(ipc_ns="shareable"))["ipc"] == {"type": "ipc"}
    with pytest.raises(InvalidParameter, match="invalid pid namespace mode"):
        spec(pid_ns="container:abc")


def test_cgroup_namespace() -> None:
    assert "cgroup" not in namespaces(spec())  # cgroup v1 host: Docker's default is host
    v2 = attrs.evolve(HOST, cgroup_v2=True)
    assert namespaces(spec(host=v2))["cgroup"] == {"type": "cgroup"}
    assert "cgroup" not in namespaces(spec(host=v2, cgroup_ns="host"))
    assert namespaces(spec(cgroup_ns="private"))["cgroup"] == {"type": "cgroup"}
    with pytest.raises(InvalidParameter, match="cgroup namespace mode"):
        spec(cgroup_ns="weird")


def test_sysctls_for_an_owned_netns() -> None:
    assert spec()["linux"]["sysctl"] == {"net.ipv4.ping_group_range": "0 2147483647",
                                         "net.ipv4.ip_unprivileged_port_start": "0"}
    assert "sysctl" in spec(network_ns="/run/netns/mine")["linux"]
    assert "sysctl" not in spec(network_ns="host")["linux"]
    assert "sysctl" not in spec(network_ns="/proc/9/ns/net", network_ns_owned=False)["linux"]


def test_user_sysctls_win() -> None:
    s = spec(sysctls={"net.ipv4.ip_unprivileged_port_start": "1024", "kernel.msgmax": "9"})
    assert s["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "1024"
    assert s["linux"]["sysctl"]["kernel.msgmax"] == "9"
    assert spec(network_ns="host", sysctls={"kernel.msgmax": "9"})["linux"]["sysctl"] == {
        "kernel.msgmax": "9"}


def test_missing_kernel_sysctls_are_not_set() -> None:
    host = attrs.evolve(HOST, net_sysctls=frozenset({"net.ipv4.ip_unprivileged_port_start"}))
    assert spec(host=host)["linux"]["sysctl"] == {"net.ipv4.ip_unprivileged_port_start": "0"}


# --- mounts ----------------------------------------------------------------------------------


def test_dockers_seven_default_mounts() -> None:
    s = spec(shm_size=128 * 1024 * 1024)
    assert [(m["destination"], m["type"], m["source"]) for m in s["mounts"]] == [
        ("/proc", "proc", "proc"), ("/dev", "tmpfs", "tmpfs"), ("/dev/pts", "devpts", "devpts"),
        ("/sys", "sysfs", "sysfs"), ("/sys/fs/cgroup", "cgroup", "cgroup"),
        ("/dev/mqueue", "mqueue", "mqueue"), ("/dev/shm", "tmpfs", "shm")]
    assert "ro" in mount(s, "/sys")["options"]
    assert "ro" in mount(s, "/sys/fs/cgroup")["options"]
    assert mount(s, "/dev/shm")["options"] == ["nosuid", "noexec", "nodev", "mode=1777",
                                               "size=134217728"]
    assert mount(s, "/dev/pts")["options"] == ["nosuid", "noexec", "newinstance",
                                               "ptmxmode=0666", "mode=0620", "gid=5"]


def test_user_mount_replaces_default() -> None:
    s = spec(mounts=[Mount.bind("/dev/shm", "/dev/shm")])
    shm = mount(s, "/dev/shm")
    assert shm["type"] == "bind"
    assert shm["options"] == ["rbind", "rprivate"]


def test_user_dev_mount_drops_every_default_under_dev() -> None:
    s = spec(mounts=[Mount.tmpfs("/dev")])
    dests = [m["destination"] for m in s["mounts"]]
    assert dests == ["/proc", "/sys", "/sys/fs/cgroup", "/dev"]


def test_user_mounts_sorted_parents_first() -> None:
    s = spec(mounts=[Mount.bind("/h/a", "/data/sub/deeper"), Mount.tmpfs("/data/sub"),
                     Mount.bind("/h/b", "/data/"), Mount.bind("/h/c", "/other", readonly=True)])
    user = [m["destination"] for m in s["mounts"][7:]]
    assert user == ["/data", "/other", "/data/sub", "/data/sub/deeper"]
    assert mount(s, "/other")["options"] == ["rbind", "ro", "rprivate"]


def test_mount_destination_must_be_absolute() -> None:
    with pytest.raises(InvalidParameter, match="must be absolute"):
        spec(mounts=[Mount.bind("/h", "relative")])


def test_readonly_rootfs_makes_non_dev_defaults_ro() -> None:
    s = spec(readonly_rootfs=True, mounts=[Mount.bind("/h", "/data")])
    for dest in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"):
        assert "ro" not in mount(s, dest)["options"], dest
    assert mount(s, "/sys")["options"].count("ro") == 1
    assert "ro" not in mount(s, "/data")["options"]


def test_ipc_none_has_no_dev_shm() -> None:
    s = spec(ipc_ns="none")
    assert not [m for m in s["mounts"] if m["destination"] == "/dev/shm"]
    assert namespaces(s)["ipc"] == {"type": "ipc"}


def test_rootfs_propagation_follows_bind_propagation() -> None:
    shared = spec(mounts=[Mount.bind("/h", "/d", propagation="rshared")])
    assert shared["linux"]["rootfsPropagation"] == "shared"
    slave = spec(mounts=[Mount.bind("/h", "/d", propagation="rslave")])
    assert slave["linux"]["rootfsPropagation"] == "rslave"


def test_tmpfs_options() -> None:
    m = Mount.tmpfs("/run", "size=64m,exec,mode=1777")
    assert m.options == ("nosuid", "nodev", "rprivate", "size=64m", "exec", "mode=1777")
    assert merge_tmpfs_options(["size=1m", "ro", "size=2m", "rw", "shared"]) == [
        "size=2m", "rw", "shared"]
    with pytest.raises(InvalidParameter, match="invalid tmpfs option"):
        Mount.tmpfs("/run", "bogus=1")


# --- resources -------------------------------------------------------------------------------


def limited(**limits: Any) -> dict[str, Any]:
    return spec(resources=Resources(**limits))


def test_memory_resources() -> None:
    res = limited(memory=32 << 20, memory_swap=64 << 20, memory_reservation=16 << 20,
                  oom_kill_disable=True)["linux"]["resources"]
    assert res["memory"] == {"limit": 32 << 20, "swap": 64 << 20, "reservation": 16 << 20,
                             "disableOOMKiller": True}
    assert limited(memory=1 << 20, memory_swap=-1)["linux"]["resources"]["memory"]["swap"] == -1
    assert "memory" not in spec()["linux"]["resources"]


def test_cpu_resources() -> None:
    res = limited(nano_cpus=1_500_000_000, cpu_shares=512, cpuset_cpus="0-1",
                  cpuset_mems="0")["linux"]["resources"]
    assert res["cpu"] == {"shares": 512, "period": 100000, "quota": 150000, "cpus": "0-1",
                          "mems": "0"}
    res = limited(cpu_period=50000, cpu_quota=25000)["linux"]["resources"]
    assert res["cpu"] == {"quota": 25000, "period": 50000}
    with pytest.raises(InvalidParameter, match="Nano CPUs and CPU Period"):
        limited(nano_cpus=1, cpu_period=100000)
    with pytest.raises(InvalidParameter, match="Nano CPUs and CPU Quota"):
        limited(nano_cpus=1, cpu_quota=100000)
    assert "cpu" not in spec()["linux"]["resources"]


def test_pids_limit() -> None:
    assert "pids" not in spec()["linux"]["resources"]
    assert limited(pids_limit=100)["linux"]["resources"]["pids"] == {"limit": 100}
    assert limited(pids_limit=0)["linux"]["resources"]["pids"] == {"limit": -1}
    assert limited(pids_limit=-1)["linux"]["resources"]["pids"] == {"limit": -1}


# --- security options --------------------------------------------------------------------------


def test_parse_security_opt() -> None:
    opts = parse_security_opt(["no-new-privileges", "seccomp=unconfined", "apparmor=x",
                               "label=disable", "writable-cgroups=false"])
    assert opts.no_new_privileges is True
    assert opts.seccomp == "unconfined"
    assert opts.apparmor == "x"
    assert opts.labels == ("disable",)
    assert opts.writable_cgroups is False
    assert parse_security_opt(["no-new-privileges=false"]).no_new_privileges is False
    assert parse_security_opt(["no-new-privileges:true"]).no_new_privileges is True
    assert parse_security_opt(['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']).seccomp == (
        '{"defaultAction":"SCMP_ACT_ALLOW"}')


def test_parse_security_opt_errors() -> None:
    with pytest.raises(InvalidParameter, match='invalid --security-opt 1: "unknown"'):
        parse_security_opt(["unknown"])
    with pytest.raises(InvalidParameter, match='invalid --security-opt 2: "unknown=x"'):
        parse_security_opt(["unknown=x"])
    with pytest.raises(InvalidParameter, match="invalid --security-opt 2"):
        parse_security_opt(["no-new-privileges=maybe"])


def test_select_seccomp() -> None:
    assert select_seccomp("unconfined") is None
    assert select_seccomp("", daemon_profile="unconfined") is None
    custom = select_seccomp('{"defaultAction": "SCMP_ACT_LOG"}')
    assert custom is not None
    assert custom.data["defaultAction"] == "SCMP_ACT_LOG"
    with pytest.raises(InvalidParameter):
        select_seccomp("{broken")


# --- rlimits -----------------------------------------------------------------------------------

LIMITED = rl.HostLimits(hard={"RLIMIT_NOFILE": 20000, "RLIMIT_NPROC": 96365},
                        can_raise=False, nr_open=1048576)
ROOTFUL = rl.HostLimits(hard={"RLIMIT_NOFILE": 4096}, can_raise=True, nr_open=1048576)


def test_default_rlimits_are_clamped_to_the_host() -> None:
    assert rl.rlimits_for_spec((), LIMITED) == (rl.Rlimit("RLIMIT_NOFILE", 20000, 20000),)
    assert rl.rlimits_for_spec((), ROOTFUL) == (rl.Rlimit("RLIMIT_NOFILE", 1048576, 1048576),)


def test_user_ulimits_override_defaults() -> None:
    out = rl.rlimits_for_spec([Ulimit("nofile", 1024, 2048), Ulimit("NPROC", 100, 200)],
                              LIMITED)
    assert out == (rl.Rlimit("RLIMIT_NOFILE", 1024, 2048), rl.Rlimit("RLIMIT_NPROC", 100, 200))


def test_explicit_ulimits_clamped_by_rlimits_for_spec() -> None:
    out = rl.rlimits_for_spec([Ulimit("nofile", 30000, 50000), Ulimit("core", -1, -1)], LIMITED)
    assert out == (rl.Rlimit("RLIMIT_NOFILE", 20000, 20000),
                   rl.Rlimit("RLIMIT_CORE", rl.RLIM_INFINITY, rl.RLIM_INFINITY))


def test_validate_ulimits_explains_the_host_limit() -> None:
    rl.validate_ulimits([Ulimit("nofile", 1024, 20000)], LIMITED)
    with pytest.raises(InvalidParameter, match=r"ulimit nofile=1024:50000 exceeds what this host "
                                                r"allows: the hard limit can be at most 20000"):
        rl.validate_ulimits([Ulimit("nofile", 1024, 50000)], LIMITED)
    with pytest.raises(InvalidParameter, match="CAP_SYS_RESOURCE"):
        rl.validate_ulimits([Ulimit("nproc", -1, -1)], LIMITED)
    rl.validate_ulimits([Ulimit("nofile", 100000, 100000)], ROOTFUL)
    with pytest.raises(InvalidParameter, match=r"fs\.nr_open"):
        rl.validate_ulimits([Ulimit("nofile", 1, 2000000)], ROOTFUL)


def test_ulimit_validation_errors() -> None:
    with pytest.raises(InvalidParameter, match="invalid ulimit type: bogus"):
        rl.parse_ulimits([Ulimit("bogus", 1, 1)])
    with pytest.raises(InvalidParameter, match="invalid ulimit type: as"):
        rl.parse_ulimits([Ulimit("as", 1, 1)])
    with pytest.raises(InvalidParameter, match="soft limit must be less than or equal to hard"):
        rl.parse_ulimits([Ulimit("nofile", 10, 5)])
    with pytest.raises(InvalidParameter, match="invalid ulimit value"):
        rl.parse_ulimits([Ulimit("nofile", -5, 5)])


def test_every_docker_ulimit_name_maps() -> None:
    names = ["core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
             "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"]
    out = rl.parse_ulimits([Ulimit(n, 1, 1) for n in names])
    assert [r.type for r in out] == ["RLIMIT_" + n.upper() for n in names]


def test_host_limits_probe_matches_getrlimit() -> None:
    import resource

    limits = rl.host_limits()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert limits.hard["RLIMIT_NOFILE"] == (rl.RLIM_INFINITY if hard < 0 else hard)


def test_default_spec_inputs_use_clamped_rlimits() -> None:
    s = build_spec(SpecInputs(args=["true"], host=HOST, seccomp_profile=None))
    (nofile,) = s["process"]["rlimits"]
    limits = rl.host_limits()
    assert nofile["hard"] <= limits.ceiling("RLIMIT_NOFILE")


def test_device_cgroup_rules_follow_the_devices() -> None:
    from engine.runtime.devices import parse_cgroup_rule

    s = spec(devices=[Device("/dev/mytun", "c", 10, 200, permissions="r")],
             device_rules=[parse_cgroup_rule("c 7:128 rwm"), parse_cgroup_rule("b *:* m")])
    rules = s["linux"]["resources"]["devices"]
    assert rules[-3:] == [
        {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "r"},
        {"allow": True, "type": "c", "major": 7, "minor": 128, "access": "rwm"},
        {"allow": True, "type": "b", "access": "m"}]
    privileged = spec(privileged=True, device_rules=[parse_cgroup_rule("c 7:128 rwm")])
    assert privileged["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]


@pytest.mark.parametrize("bad", ["c 7:128", "x 1:2 r", "c 1:2 rwx", "c a:1 r", " c 1:2 r"])
def test_bad_device_cgroup_rules(bad: str) -> None:
    from engine.runtime.devices import parse_cgroup_rule

    with pytest.raises(InvalidParameter, match="invalid device cgroup rule format"):
        parse_cgroup_rule(bad)


def test_devices_from_a_path(tmp_path: Path) -> None:
    from engine.errors import SystemFailure
    from engine.runtime.devices import devices_from_path

    (found,) = devices_from_path("/dev/null", "/dev/mynull", "rw")
    assert (found.path, found.type, found.major, found.minor, found.permissions) == (
        "/dev/mynull", "c", 1, 3, "rw")
    (tmp_path / "link").symlink_to("/dev/zero")
    assert devices_from_path(str(tmp_path / "link"), "/dev/z", "rwm")[0].minor == 5
    with pytest.raises(SystemFailure, match='adding custom device "/etc/hostname"'):
        devices_from_path("/etc/hostname", "/x", "rwm")
