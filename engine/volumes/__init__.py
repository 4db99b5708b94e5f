"""Volumes: named, anonymous, bind and tmpfs mounts for containers, and the volumes API.

- `model`: the records (`Volume`, `MountRequest`, `MountPoint`, `SpecMount`);
- `parse`: `-v`, `--mount`, `--tmpfs`, `--volumes-from` and image `VOLUME`s, with
  Docker's rules and messages;
- `service`: `VolumeService`, which creates, lists and removes volumes through their
  drivers (pluggy plugins, `plugins.volume_contract`), and is the container manager's
  one handle on volumes;
- `usage`: who uses and who has mounted each volume, and the container side (claim,
  mount at start, unmount at exit, release at removal, re-adopt at start-up);
- `populate` and `copy`: filling a new volume from the image's directory;
- `binds`: bind sources on the host (present, or made for `-v`).

The whole story is in docs/volumes.md.
"""

from engine.volumes.model import MountPoint, MountRequest, MountType, SpecMount, Volume
from engine.volumes.parse import parse_mount_requests, parse_volumes_from, volumes_from
from engine.volumes.service import VolumeService, volume_drivers_from

__all__ = [
    "MountPoint",
    "MountRequest",
    "MountType",
    "SpecMount",
    "Volume",
    "VolumeService",
    "parse_mount_requests",
    "parse_volumes_from",
    "volume_drivers_from",
    "volumes_from",
]
