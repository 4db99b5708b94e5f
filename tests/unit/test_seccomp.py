"""seccomp: profile loading and resolution to plain OCI for caps, arch and kernel."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from engine.errors import HostNotReady, InvalidParameter
from engine.runtime import seccomp
from engine.runtime.seccomp import Profile, kernel_version, native_arch, parse_profile, resolve

DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

# A small profile in Docker's format with one rule per kind of condition.
SAMPLE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64",
         "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": None,
         "comment": "always", "includes": {}, "excludes": {}},
        {"names": ["mount", "umount2"], "action": "SCMP_ACT_ALLOW",
         "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["mount", "umount2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "errno": "EPERM", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
         "includes": {"arches": ["amd64", "x32"]}},
        {"names": ["arm_fadvise64_64"], "action": "SCMP_ACT_ALLOW",
         "includes": {"arches": ["arm", "arm64"]}},
        {"names": ["not_on_s390"], "action": "SCMP_ACT_ALLOW",
         "excludes": {"arches": ["s390x"]}},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        {"names": ["old_only"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.10"}},
        {"names": ["needs_two"], "action": "SCMP_ACT_ALLOW",
         "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]}},
        {"name": "personality", "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
    ],
}


def names(resolved: dict[str, Any] | None, action: str | None = None) -> set[str]:
    assert resolved is not None
    return {n for rule in resolved["syscalls"] if action in (None, rule["action"])
            for n in rule["names"]}


def sample(**overrides: Any) -> Profile:
    return parse_profile(json.dumps({**SAMPLE, **overrides}))


def test_top_level_keys_kept_and_arch_expanded_for_x86_64() -> None:
    out = resolve(sample(), DEFAULT_CAPS, "x86_64", (6, 1))
    assert out is not None
    assert out["defaultAction"] == "SCMP_ACT_ERRNO"
    assert out["defaultErrnoRet"] == 1
    assert out["flags"] == ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert "archMap" not in out


def test_aarch64_gets_its_own_sub_arches_and_rules() -> None:
    out = resolve(sample(), DEFAULT_CAPS, "aarch64", (6, 1))
    assert out is not None
    assert out["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arm_fadvise64_64" in names(out)
    assert "arch_prctl" not in names(out)


def test_arch_without_archmap_entry_leaves_architectures_to_the_runtime() -> None:
    out = resolve(sample(), DEFAULT_CAPS, "ppc64le", (6, 1))
    assert out is not None
    assert "architectures" not in out
    assert "not_on_s390" in names(out)
    assert "not_on_s390" not in names(resolve(sample(), DEFAULT_CAPS, "s390x", (6, 1)))


def test_includes_arches_use_native_name() -> None:
    out = resolve(sample(), DEFAULT_CAPS, "x86_64", (6, 1))
    assert "arch_prctl" in names(out)
    assert "arm_fadvise64_64" not in names(out)


def test_mount_needs_cap_sys_admin() -> None:
    without = resolve(sample(), DEFAULT_CAPS, "x86_64", (6, 1))
    assert "mount" not in names(without, "SCMP_ACT_ALLOW")
    assert "mount" in names(without, "SCMP_ACT_ERRNO")
    with_admin = resolve(sample(), (*DEFAULT_CAPS, "CAP_SYS_ADMIN"), "x86_64", (6, 1))
    assert "mount" in names(with_admin, "SCMP_ACT_ALLOW")
    assert "mount" not in names(with_admin, "SCMP_ACT_ERRNO")


def test_includes_caps_need_all_of_them() -> None:
    one = resolve(sample(), (*DEFAULT_CAPS, "CAP_SYS_ADMIN"), "x86_64", (6, 1))
    assert "needs_two" not in names(one)
    both = resolve(sample(), (*DEFAULT_CAPS, "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"), "x86_64", (6, 1))
    assert "needs_two" in names(both)


def test_min_kernel() -> None:
    old = resolve(sample(), DEFAULT_CAPS, "x86_64", (4, 4))
    assert "ptrace" not in names(old)
    assert "old_only" in names(old)
    new = resolve(sample(), DEFAULT_CAPS, "x86_64", (5, 10))
    assert "ptrace" in names(new)
    assert "old_only" not in names(new)
    assert "ptrace" in names(resolve(sample(), DEFAULT_CAPS, "x86_64", (4, 8)))


def test_rules_are_plain_oci() -> None:
    out = resolve(sample(), DEFAULT_CAPS, "x86_64", (6, 1))
    assert out is not None
    rules = {tuple(r["names"]): r for r in out["syscalls"]}
    assert rules[("read", "write")] == {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}
    assert rules[("mount", "umount2")] == {"names": ["mount", "umount2"],
                                           "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    assert rules[("personality",)]["args"] == [
        {"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]
    for rule in out["syscalls"]:
        assert set(rule) <= {"names", "action", "errnoRet", "args"}


def test_plain_architectures_list_passes_through() -> None:
    out = resolve(sample(archMap=None, architectures=["SCMP_ARCH_X86_64"]), DEFAULT_CAPS,
                  "x86_64", (6, 1))
    assert out is not None
    assert out["architectures"] == ["SCMP_ARCH_X86_64"]


def test_empty_profile_means_no_filter() -> None:
    assert resolve(parse_profile("{}"), DEFAULT_CAPS, "x86_64", (6, 1)) is None


def test_parse_errors() -> None:
    with pytest.raises(InvalidParameter, match="Decoding seccomp profile failed"):
        parse_profile("{not json")
    with pytest.raises(InvalidParameter, match="not a JSON object"):
        parse_profile("[]")
    with pytest.raises(InvalidParameter, match="'architectures' and 'archMap'"):
        parse_profile(json.dumps({**SAMPLE, "architectures": ["SCMP_ARCH_X86_64"]}))
    with pytest.raises(InvalidParameter, match="'name' and 'names'"):
        parse_profile(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"name": "read", "names": ["write"], "action": "SCMP_ACT_ERRNO"}]}))


def test_native_arch_names() -> None:
    assert native_arch("x86_64") == "amd64"
    assert native_arch("aarch64") == "arm64"
    assert native_arch("armv7l") == "arm"
    assert native_arch("i686") == "x86"
    assert native_arch("s390x") == "s390x"
    assert native_arch("mips64", "little") == "mipsel64"
    assert native_arch("amd64") == "amd64"


def test_kernel_version() -> None:
    assert kernel_version("6.18.44-fc-v669") == (6, 18)
    assert kernel_version("3.12-1-amd64") == (3, 12)
    assert kernel_version("5.4.0+") == (5, 4)
    with pytest.raises(ValueError, match="kernel version"):
        kernel_version("weird")


def test_load_profile_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.json")
    with pytest.raises(HostNotReady, match="does not exist"):
        seccomp.load_profile(missing)


def test_load_profile_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(HostNotReady, match=r"broken\.json"):
        seccomp.load_profile(str(path))


def test_load_profile_is_cached_per_path(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(SAMPLE))
    first = seccomp.load_profile(str(path))
    os.unlink(path)
    assert seccomp.load_profile(str(path)) is first
    assert first.source == str(path)


# --- the containers-common profile installed on this host ------------------------------


@pytest.fixture
def installed() -> Profile:
    if not os.path.exists(seccomp.DEFAULT_PROFILE_PATH):
        pytest.fail(f"{seccomp.DEFAULT_PROFILE_PATH} is missing: "
                    "install Debian's golang-github-containers-common")
    return seccomp.default_profile()


def test_installed_profile_resolves(installed: Profile) -> None:
    out = resolve(installed, DEFAULT_CAPS, "x86_64", (6, 1))
    assert out is not None
    assert out["defaultAction"] == "SCMP_ACT_ERRNO"
    assert out["architectures"][0] == "SCMP_ARCH_X86_64"
    allowed = names(out, "SCMP_ACT_ALLOW")
    assert {"read", "write", "execve", "clone", "arch_prctl"} <= allowed
    for rule in out["syscalls"]:
        assert set(rule) <= {"names", "action", "errnoRet", "args"}
    json.dumps(out)


@pytest.mark.parametrize("syscall", ["bpf", "perf_event_open", "fanotify_init"])
def test_installed_profile_cap_sys_admin_rules(installed: Profile, syscall: str) -> None:
    without = resolve(installed, DEFAULT_CAPS, "x86_64", (6, 1))
    assert syscall not in names(without, "SCMP_ACT_ALLOW")
    assert syscall in names(without, "SCMP_ACT_ERRNO")
    with_admin = resolve(installed, (*DEFAULT_CAPS, "CAP_SYS_ADMIN"), "x86_64", (6, 1))
    assert syscall in names(with_admin, "SCMP_ACT_ALLOW")
    assert syscall not in names(with_admin, "SCMP_ACT_ERRNO")


def test_installed_profile_chroot_follows_cap_sys_chroot(installed: Profile) -> None:
    assert "chroot" in names(resolve(installed, DEFAULT_CAPS, "x86_64", (6, 1)), "SCMP_ACT_ALLOW")
    dropped = tuple(c for c in DEFAULT_CAPS if c != "CAP_SYS_CHROOT")
    out = resolve(installed, dropped, "x86_64", (6, 1))
    assert "chroot" not in names(out, "SCMP_ACT_ALLOW")
    assert "chroot" in names(out, "SCMP_ACT_ERRNO")
