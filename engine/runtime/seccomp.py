"""The seccomp filter: a containers-common / Docker profile resolved to plain OCI.

moord does not ship a profile of its own. It loads the one Debian's
`golang-github-containers-common` installs at `/usr/share/containers/seccomp.json`
(or any file in the same format) and, for each container, resolves it the way
Docker and Podman do before handing it to the runtime:

- `archMap` becomes `architectures`: the native architecture and its
  sub-architectures (x86_64 also runs x86 and x32 binaries);
- each syscall rule is kept only if its `includes` / `excludes` match: every cap in
  `includes.caps` is in the container's bounding set and none of `excludes.caps`
  is; the native architecture (libseccomp's names: amd64, arm64, x86, x32, ...) is in
  `includes.arches` and not in `excludes.arches`; the kernel is at least
  `includes.minKernel` and below `excludes.minKernel`;
- only OCI keys are kept (`names`, `action`, `errnoRet`, `args`); comments and the
  profile's informational `errno` names are dropped.

Loading is blocking and cached per path (once per daemon); resolving is pure.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from engine.errors import HostNotReady, InvalidParameter

DEFAULT_PROFILE_PATH = "/usr/share/containers/seccomp.json"

# platform.machine() -> libseccomp's native architecture name (the profiles' "arches").
_MACHINE_TO_NATIVE: dict[str, str] = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "x86",
    "i486": "x86",
    "i586": "x86",
    "i686": "x86",
    "x86": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "ppc": "ppc",
    "s390x": "s390x",
    "s390": "s390",
    "riscv64": "riscv64",
    "loongarch64": "loong64",
    "loong64": "loong64",
}

# libseccomp native name -> the SCMP_ARCH_* constant that archMap and OCI use.
NATIVE_TO_SCMP: dict[str, str] = {
    "amd64": "SCMP_ARCH_X86_64",
    "x86": "SCMP_ARCH_X86",
    "x32": "SCMP_ARCH_X32",
    "arm64": "SCMP_ARCH_AARCH64",
    "arm": "SCMP_ARCH_ARM",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc": "SCMP_ARCH_PPC",
    "s390x": "SCMP_ARCH_S390X",
    "s390": "SCMP_ARCH_S390",
    "riscv64": "SCMP_ARCH_RISCV64",
    "loong64": "SCMP_ARCH_LOONGARCH64",
    "mips": "SCMP_ARCH_MIPS",
    "mipsel": "SCMP_ARCH_MIPSEL",
    "mips64": "SCMP_ARCH_MIPS64",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64n32": "SCMP_ARCH_MIPSEL64N32",
}

# Top-level keys of OCI `linux.seccomp` that a profile may carry through unchanged.
_OCI_TOP_KEYS = ("defaultAction", "defaultErrnoRet", "flags", "listenerPath", "listenerMetadata")


@attrs.frozen(eq=False)
class Profile:
    """A parsed profile (Docker / containers-common format), not yet resolved.

    `source` says where it came from, for error messages.
    """

    data: Mapping[str, Any]
    source: str = ""


def native_arch(machine: str, byteorder: str = sys.byteorder) -> str:
    """libseccomp's name for the architecture `platform.machine()` reports."""
    m = machine.lower()
    if m in _MACHINE_TO_NATIVE:
        return _MACHINE_TO_NATIVE[m]
    if m.startswith("arm"):
        return "arm"
    little = byteorder == "little"
    if m == "mips64":
        return "mipsel64" if little else "mips64"
    if m == "mips":
        return "mipsel" if little else "mips"
    return m  # already a native name (mipsel64n32, ...) or one we don't know


def kernel_version(release: str) -> tuple[int, int]:
    """(major, minor) of a kernel release such as `6.18.44-fc-v669` or `3.12-1-amd64`."""
    match = re.match(r"(\d+)\.(\d+)", release)
    if match is None:
        raise ValueError(f"cannot parse kernel version {release!r}")
    return int(match.group(1)), int(match.group(2))


def parse_profile(text: str | bytes, source: str = "") -> Profile:
    """Parse and check a profile given as JSON text (e.g. from `--security-opt seccomp=`)."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidParameter(f"Decoding seccomp profile failed: {exc}") from None
    _check(data)
    return Profile(data=data, source=source)


def _check(data: object) -> None:
    if not isinstance(data, dict):
        raise InvalidParameter("Decoding seccomp profile failed: the profile is not a JSON object")
    if data.get("architectures") and data.get("archMap"):
        raise InvalidParameter(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, "
            "use either 'architectures' or 'archMap'")
    for rule in data.get("syscalls") or ():
        if not isinstance(rule, dict):
            raise InvalidParameter(
                "Decoding seccomp profile failed: a syscall rule is not an object")
        if rule.get("name") and rule.get("names"):
            raise InvalidParameter(
                "both 'name' and 'names' are specified in the seccomp profile, "
                "use either 'name' or 'names'")


@functools.cache
def load_profile(path: str = DEFAULT_PROFILE_PATH) -> Profile:
    """Read a profile file once per daemon (cached per path). Blocking on the first call.

    A missing or broken file raises `HostNotReady`: the daemon decides whether that
    stops it from starting.
    """
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        hint = ""
        if path == DEFAULT_PROFILE_PATH:
            hint = (" (install Debian's golang-github-containers-common, or set seccomp-profile"
                    " in daemon.toml to another file or to 'unconfined')")
        raise HostNotReady(f"seccomp profile {path} does not exist{hint}") from None
    except OSError as exc:
        raise HostNotReady(f"cannot read seccomp profile {path}: {exc.strerror}") from None
    try:
        return parse_profile(text, source=path)
    except InvalidParameter as exc:
        raise HostNotReady(f"seccomp profile {path}: {exc.message}") from None


def default_profile() -> Profile:
    """The default profile (containers-common's), loaded once."""
    return load_profile(DEFAULT_PROFILE_PATH)


def _matches(
    rule: Mapping[str, Any], caps: frozenset[str], arch: str, kernel: tuple[int, int]
) -> bool:
    excludes = rule.get("excludes") or {}
    includes = rule.get("includes") or {}
    if arch in (excludes.get("arches") or ()):
        return False
    if any(c in caps for c in excludes.get("caps") or ()):
        return False
    if excludes.get("minKernel") and kernel >= kernel_version(str(excludes["minKernel"])):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if not all(c in caps for c in includes.get("caps") or ()):
        return False
    return not (includes.get("minKernel")
                and kernel < kernel_version(str(includes["minKernel"])))


def _oci_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    names = list(rule.get("names") or ()) or ([rule["name"]] if rule.get("name") else [])
    out: dict[str, Any] = {"names": names, "action": rule["action"]}
    if rule.get("errnoRet") is not None:
        out["errnoRet"] = rule["errnoRet"]
    args = rule.get("args") or []
    if args:
        out["args"] = [
            {k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a} for a in args
        ]
    return out


def resolve(
    profile: Profile, capabilities: Iterable[str], machine: str, kernel: tuple[int, int]
) -> dict[str, Any] | None:
    """The OCI `linux.seccomp` object for a container with `capabilities` (its bounding set).

    `machine` is `platform.machine()` (or a libseccomp name); `kernel` is (major, minor).
    Returns None for an empty profile (no default action and no rules), as Docker does.
    """
    data = profile.data
    if not data.get("defaultAction") and not data.get("syscalls"):
        return None
    caps = frozenset(capabilities)
    arch = native_arch(machine)
    out: dict[str, Any] = {k: data[k] for k in _OCI_TOP_KEYS if data.get(k) is not None}
    architectures = list(data.get("architectures") or ())
    scmp = NATIVE_TO_SCMP.get(arch)
    for entry in data.get("archMap") or ():
        if scmp is not None and entry.get("architecture") == scmp:
            architectures = [scmp, *(entry.get("subArchitectures") or ())]
            break
    if architectures:
        out["architectures"] = architectures
    out["syscalls"] = [
        _oci_rule(rule) for rule in data.get("syscalls") or () if _matches(rule, caps, arch, kernel)
    ]
    return out
