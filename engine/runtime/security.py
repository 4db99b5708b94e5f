"""Docker's security settings for an OCI spec: capabilities, masked and read-only paths,
and `--security-opt` with the seccomp profile it selects."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from engine.errors import InvalidParameter
from engine.runtime import seccomp

# Kernel capability names, index = capability number (linux/capability.h).
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

# Docker's defaults, in Docker's order (CapEff 00000000a80425fb).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)

@attrs.frozen
class SecurityOptions:
    """Docker's `--security-opt` list, parsed the way dockerd parses it."""

    no_new_privileges: bool = False
    seccomp: str = ""  # "" daemon default, "unconfined", "builtin", or profile JSON
    apparmor: str = ""
    labels: tuple[str, ...] = ()
    writable_cgroups: bool | None = None


def _parse_bool(text: str) -> bool | None:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    return None


def parse_security_opt(options: Iterable[str]) -> SecurityOptions:
    """Parse `HostConfig.SecurityOpt`; unknown options fail with Docker's wording."""
    nnp = False
    seccomp_value = ""
    apparmor = ""
    labels: list[str] = []
    writable: bool | None = None
    for opt in options:
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "writable-cgroups":
            writable = True
            continue
        if opt == "disable":
            labels.append("disable")
            continue
        sep = "=" if "=" in opt else ":" if ":" in opt else ""
        if not sep:
            raise InvalidParameter(f'invalid --security-opt 1: "{opt}"')
        key, value = opt.split(sep, 1)
        if key == "label":
            labels.append(value)
        elif key == "apparmor":
            apparmor = value
        elif key == "seccomp":
            seccomp_value = value
        elif key in ("no-new-privileges", "writable-cgroups"):
            parsed = _parse_bool(value)
            if parsed is None:
                raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
            if key == "no-new-privileges":
                nnp = parsed
            else:
                writable = parsed
        else:
            raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
    return SecurityOptions(nnp, seccomp_value, apparmor, tuple(labels), writable)


def select_seccomp(value: str, daemon_profile: str = seccomp.DEFAULT_PROFILE_PATH
                   ) -> seccomp.Profile | None:
    """The profile for a container's `seccomp=` option (None: unconfined).

    "" uses the daemon's profile (a path, or "unconfined"); "builtin" / "default" the
    default file; anything else is the profile's JSON, as the docker CLI sends it.
    Blocking the first time a file is loaded (then cached).
    """
    if value == "unconfined":
        return None
    if value == "":
        return None if daemon_profile == "unconfined" else seccomp.load_profile(daemon_profile)
    if value in ("builtin", "default"):
        return seccomp.default_profile()
    return seccomp.parse_profile(value, source="--security-opt seccomp")


# --- capabilities -------------------------------------------------------------------


def normalize_capabilities(names: Iterable[str], available: Sequence[str]) -> list[str]:
    """`sys_admin`, `CAP_SYS_ADMIN`, `Sys_Admin` → `CAP_SYS_ADMIN`; "ALL" kept as is."""
    out = []
    for name in names:
        upper = name.strip().upper()
        if upper == "ALL":
            out.append(upper)
            continue
        if not upper.startswith("CAP_"):
            upper = "CAP_" + upper
        if upper not in CAPABILITIES:
            raise InvalidParameter(f'unknown capability: "{upper}"')
        if upper not in available:
            raise InvalidParameter(
                "capability not supported by your kernel or not available in the current "
                f'environment: "{upper}"')
        out.append(upper)
    return out


def effective_capabilities(privileged: bool, cap_add: Iterable[str], cap_drop: Iterable[str],
                           available: Sequence[str]) -> list[str]:
    """Docker's rules: privileged → all; add ALL → all but the drops; drop ALL → the adds."""
    if privileged:
        return list(available)
    adds = normalize_capabilities(cap_add, available)
    drops = normalize_capabilities(cap_drop, available)
    if "ALL" in adds:
        caps = [c for c in available if c not in drops]
    elif "ALL" in drops:
        caps = [c for c in adds if c != "ALL"]
    else:
        caps = [c for c in DEFAULT_CAPABILITIES if c not in drops] + adds
    return list(dict.fromkeys(caps))
