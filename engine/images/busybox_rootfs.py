"""The built-in base image: a root filesystem tarball made from Debian's busybox-static.

The host has no internet, so set-up makes `busybox:latest` from the static binary the
host already has and imports it through the same endpoint users import with
(`POST /images/create?fromSrc=-`). Run as `python -m engine.images.busybox_rootfs OUT.tar`
(or `-` for stdout).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import time
from typing import BinaryIO

BUSYBOX = "/usr/bin/busybox"
CHANGES = ['CMD ["sh"]']

_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "bin:x:2:2:bin:/bin:/bin/false\n"
    "sys:x:3:3:sys:/dev:/bin/false\n"
    "sync:x:4:100:sync:/bin:/bin/sync\n"
    "mail:x:8:8:mail:/var/spool/mail:/bin/false\n"
    "www-data:x:33:33:www-data:/var/www:/bin/false\n"
    "operator:x:37:37:Operator:/var:/bin/false\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n"
)
_GROUP = (
    "root:x:0:\n"
    "daemon:x:1:\n"
    "bin:x:2:\n"
    "sys:x:3:\n"
    "adm:x:4:\n"
    "tty:x:5:\n"
    "disk:x:6:\n"
    "wheel:x:10:root\n"
    "mail:x:8:\n"
    "www-data:x:33:\n"
    "users:x:100:\n"
    "nogroup:x:65534:\n"
)
_DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "lib": 0o755,
         "proc": 0o555, "root": 0o700, "sys": 0o555, "tmp": 0o1777, "usr": 0o755,
         "usr/sbin": 0o755, "var": 0o755, "var/spool": 0o755, "var/spool/mail": 0o755,
         "var/www": 0o755}


def applets(busybox: str = BUSYBOX) -> list[str]:
    out = subprocess.run([busybox, "--list"], capture_output=True, check=True, text=True)
    return sorted({a for a in out.stdout.split() if a and a != "busybox"})


def write_rootfs(out: BinaryIO, busybox: str = BUSYBOX) -> None:
    """A deterministic tarball (fixed mtimes and owners) of a busybox root filesystem."""
    mtime = int(time.time()) // 86400 * 86400
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        def add_dir(name: str, mode: int) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, mtime
            tar.addfile(info)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, mtime
            tar.addfile(info, io.BytesIO(data))

        for name, mode in sorted(_DIRS.items()):
            add_dir(name, mode)
        with open(busybox, "rb") as f:
            add_file("bin/busybox", f.read(), 0o755)
        for applet in applets(busybox):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, "busybox", 0o777, mtime
            tar.addfile(info)
        add_file("etc/passwd", _PASSWD.encode())
        add_file("etc/group", _GROUP.encode())
        add_file("etc/hostname", b"")
        add_file("etc/hosts", b"127.0.0.1\tlocalhost\n")
        add_file("etc/resolv.conf", b"")


def main(argv: list[str]) -> None:
    target = argv[1] if len(argv) > 1 else "-"
    if target == "-":
        write_rootfs(sys.stdout.buffer)
    else:
        with open(target, "wb") as f:
            write_rootfs(f)


if __name__ == "__main__":
    main(sys.argv)
