"""What `docker import` makes of a root filesystem tarball: platform and image config.

The store does the storing (`ImageStore.import_rootfs`); this module decides what the
new image says about itself, the way Docker's import does: the host's platform unless
one is asked for, the `--change` instructions applied to an empty config, and one
history entry whose comment is the import message.
"""

from __future__ import annotations

import datetime as dt
import platform as host_platform

import attrs

from engine.errors import InvalidParameter
from engine.images import ociconfig
from engine.images.model import HistoryEntry, Image, ImageConfig


@attrs.frozen
class Platform:
    os: str
    architecture: str
    variant: str = ""


# Go's GOARCH names (what image configs use) for what `uname -m` and users say.
_ARCH_ALIASES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "386": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}
_KNOWN_OS = {"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris"}


def host_architecture() -> tuple[str, str]:
    """This machine's (architecture, variant) in image-config terms."""
    machine = host_platform.machine().lower()
    return _ARCH_ALIASES.get(machine, (machine, ""))


def parse_platform(text: str) -> Platform:
    """`linux`, `linux/amd64`, `linux/arm64/v8` or `amd64` → a platform; only Linux is allowed.

    Empty means the host's platform.
    """
    arch, variant = host_architecture()
    if not text:
        return Platform("linux", arch, variant)
    parts = text.strip().lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidParameter(f"invalid platform {text!r}: expected os[/arch[/variant]]")
    if len(parts) == 1 and parts[0] not in _KNOWN_OS:
        os_name, rest = "linux", parts
    else:
        os_name, rest = parts[0], parts[1:]
    if os_name != "linux":
        raise InvalidParameter(f"operating system is not supported: {os_name}")
    if rest:
        arch, variant = _ARCH_ALIASES.get(rest[0], (rest[0], ""))
        if len(rest) > 1:
            variant = rest[1]
    return Platform("linux", arch, variant)


def import_config_blob(
    *,
    config: ImageConfig,
    diff_id: str,
    message: str,
    platform: Platform,
    created: dt.datetime,
) -> bytes:
    """The config blob of an imported one-layer image (its sha256 is the image ID).

    As in Docker, the history entry has no `created_by`: the message is its comment.
    """
    draft = Image(
        id="",
        config=config,
        diff_ids=[diff_id],
        created=created,
        architecture=platform.architecture,
        os=platform.os,
        variant=platform.variant,
        comment=message,
        history=[HistoryEntry(created=created, comment=message)],
    )
    return ociconfig.image_to_config(draft)


__all__ = ["Platform", "host_architecture", "import_config_blob", "parse_platform"]
