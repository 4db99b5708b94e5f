"""Short names for layer directories: `layers/l/<link>` -> `../<diffid-hex>/diff`.

Overlayfs takes its mount options in one page (4096 bytes): absolute lowerdirs (~90
bytes each here) overflow it near 40 layers, `l/<link>` ones (15 bytes) fit 128 with
room to spare, as in Docker's overlay2. A layer records its link's name in its
`link` file. A link is made (dangling) before its staged layer is renamed visible and
dropped after its layer is renamed away, so a crash in between leaves a stray link,
which `sweep_sync` removes at start-up.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Set
from contextlib import suppress
from pathlib import Path

from engine import fsutil

log = logging.getLogger(__name__)

_LINK_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # base32: safe in overlay options
_LINK_LENGTH = 12  # 60 random bits; 128 layers then take 1920 bytes of the mount options
_LINK_NAME = re.compile(r"^[A-Z2-7]{8,26}\Z")


def _target(hexid: str) -> str:
    return f"../{hexid}/diff"


def read_link_name(layer_dir: Path) -> str:
    """The name in the layer's `link` file, or "" if it has none (or an unreadable one)."""
    try:
        return (layer_dir / "link").read_text().strip()
    except OSError:
        return ""


class LayerLinks:
    """The `l/` directory beside the layers; every method blocks (run it on a thread)."""

    def __init__(self, directory: Path, *, durable: bool) -> None:
        self.directory = directory
        self.durable = durable

    def make_sync(self, hexid: str) -> str:
        """Create `l/<new random name>` -> `../<hexid>/diff`; the caller makes it durable."""
        self.directory.mkdir(exist_ok=True)
        while True:
            name = "".join(secrets.choice(_LINK_CHARS) for _ in range(_LINK_LENGTH))
            try:
                os.symlink(_target(hexid), self.directory / name)
            except FileExistsError:
                continue
            return name

    def repair_sync(self, layer_dir: Path) -> str:
        """The layer's link name, after making sure `l/<name>` exists and points at it.

        A missing link is recreated under its recorded name; a missing, malformed or
        taken name gets a new link, recorded in the layer's `link` file.
        """
        hexid = layer_dir.name
        name = read_link_name(layer_dir)
        if _LINK_NAME.match(name):
            link = self.directory / name
            try:
                if os.readlink(link) == _target(hexid):
                    return name
            except FileNotFoundError:
                try:
                    os.symlink(_target(hexid), link)
                except FileExistsError:
                    pass
                else:
                    log.info("recreated the missing link %s of layer %s", link, hexid)
                    if self.durable:
                        fsutil.fsync_dir(self.directory)
                    return name
            except OSError:
                pass  # something else is there: the stray sweep removes it
        name = self.make_sync(hexid)
        log.info("layer %s gets the short link %s", hexid, name)
        if self.durable:
            fsutil.fsync_dir(self.directory)
        fsutil.atomic_write(layer_dir / "link", f"{name}\n".encode(), mode=0o644,
                            durable=self.durable)
        return name

    def drop_sync(self, name: str, hexid: str) -> None:
        """Remove `l/<name>` if it is a well-formed link to that layer (no fsync)."""
        if _LINK_NAME.match(name):
            with suppress(OSError):
                if os.readlink(self.directory / name) == _target(hexid):
                    os.unlink(self.directory / name)

    def sweep_sync(self, wanted: Set[str]) -> None:
        """Remove every entry of `l/` whose name no layer records (stray or dangling links)."""
        stray = [e for e in self.directory.iterdir() if e.name not in wanted]
        for link in stray:
            log.info("removing stray layer link %s", link)
            if link.is_dir() and not link.is_symlink():
                fsutil.remove_tree(link)
            else:
                link.unlink(missing_ok=True)
        if stray and self.durable:
            fsutil.fsync_dir(self.directory)
