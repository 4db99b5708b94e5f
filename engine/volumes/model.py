"""Volume records and what containers ask of the volume subsystem.

Three records, for three moments:

- `Volume`: moord's metadata about one volume (the driver owns the data), persisted
  as `<data-root>/state/volumes/NAME.json`.
- `MountRequest`: one mount a container asks for at create time, parsed from `-v`,
  `--mount`, `--tmpfs`, `--volumes-from` and the image's `VOLUME`s
  (`engine.volumes.parse`). Pure data: parsing touches no file.
- `MountPoint`: one mount a container has, once `VolumeService.claim` has created its
  volume or checked its host path. It goes into the container's own JSON record, is
  what inspect's `Mounts` shows, and what the start path turns into OCI mounts.
"""

from __future__ import annotations

import datetime as dt
import enum

import attrs

from engine.runtime.ocimounts import Mount

# Docker (23 and later) labels anonymous volumes so that `volume prune` can tell them apart
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
DEFAULT_DRIVER = "local"
DEFAULT_PROPAGATION = "rprivate"


class MountType(enum.StrEnum):
    BIND = "bind"
    VOLUME = "volume"
    TMPFS = "tmpfs"


class Origin(enum.StrEnum):
    """Where a request came from: its precedence, and which of Docker's messages fit."""

    BINDS = "binds"  # -v / HostConfig.Binds
    MOUNTS = "mounts"  # --mount / HostConfig.Mounts
    TMPFS = "tmpfs"  # --tmpfs / HostConfig.Tmpfs
    VOLUMES = "volumes"  # -v /path as the CLI sends it: Config.Volumes
    IMAGE = "image"  # VOLUME in the image's config
    VOLUMES_FROM = "volumes-from"


@attrs.define
class Volume:
    """moord's record of a volume. `mountpoint` is where the driver said the data is."""

    name: str
    driver: str
    mountpoint: str
    created: dt.datetime
    labels: dict[str, str] = attrs.field(factory=dict)
    options: dict[str, str] = attrs.field(factory=dict)
    scope: str = "local"
    anonymous: bool = False
    # the image's content was copied in, or the volume had data when first mounted:
    # from then on moord never copies into it again (see VolumeService.populate)
    populated: bool = False


def _str_map(value: object) -> dict[str, str]:
    return dict(value) if isinstance(value, dict) else {}


@attrs.frozen
class MountRequest:
    """One mount a container asks for, validated but not acted upon.

    - bind: `source` is an absolute, cleaned host path; `create_source` says whether a
      missing one is made (`-v` does, as Docker does; `--mount` refuses it unless
      `bind-create-mountpoint`); `propagation` "" means Docker's default, rprivate.
    - volume: `source` is the volume's name, "" for a new anonymous volume; `driver`,
      `driver_options` and `labels` apply only if the volume has to be created; `nocopy`
      turns off the copy of the image's content into a new volume; `subpath` mounts a
      directory inside the volume.
    - tmpfs: `tmpfs_data` is the mount data (`size=64m,mode=1777`, and `ro`).

    `relabel` (z/Z) is accepted and ignored (no SELinux here). `mode` is the `-v`
    mode text, which inspect shows as `Mode`. `listed` is False for `--tmpfs` mounts,
    which Docker leaves out of inspect's `Mounts`.
    """

    type: MountType
    target: str
    source: str = ""
    read_only: bool = False
    propagation: str = ""
    relabel: str = ""
    nocopy: bool = False
    driver: str = ""
    driver_options: dict[str, str] = attrs.field(factory=dict, converter=_str_map, hash=False)
    labels: dict[str, str] = attrs.field(factory=dict, converter=_str_map, hash=False)
    subpath: str = ""
    tmpfs_data: str = ""
    create_source: bool = False
    recursive: bool = True
    mode: str = ""
    origin: Origin = Origin.BINDS
    listed: bool = True

    @property
    def anonymous(self) -> bool:
        return self.type is MountType.VOLUME and not self.source


@attrs.frozen
class MountPoint:
    """One of a container's mounts, as it is kept in the container's record.

    `source` is the host path: the bind's path, the volume's mountpoint as known at
    create time (the start path asks the driver again), "" for tmpfs. `copy_data`:
    copy the image's content at `destination` into the volume the first time it is
    mounted. Plain strings and booleans only, so cattrs stores it as it is.
    """

    type: str
    destination: str
    source: str = ""
    name: str = ""
    driver: str = ""
    mode: str = ""
    rw: bool = True
    propagation: str = ""
    anonymous: bool = False
    copy_data: bool = False
    create_source: bool = False
    recursive: bool = True
    subpath: str = ""
    tmpfs_data: str = ""
    listed: bool = True


@attrs.frozen
class SpecMount:
    """A mount for the container's config.json, as `VolumeService.mount_for_start` gives it.

    `kind` is "bind" (host path `source` at `destination`) or "tmpfs" (`data` are the
    tmpfs options). `to_oci()` makes the `engine.runtime.ocimounts.Mount` for `SpecInputs.mounts`.
    """

    kind: str
    destination: str
    source: str = ""
    readonly: bool = False
    propagation: str = DEFAULT_PROPAGATION
    recursive: bool = True
    data: str = ""

    def to_oci(self) -> Mount:
        if self.kind == "tmpfs":
            return Mount.tmpfs(self.destination, self.data)
        return Mount.bind(self.source, self.destination, readonly=self.readonly,
                          propagation=self.propagation, recursive=self.recursive)


__all__ = [
    "ANONYMOUS_LABEL",
    "DEFAULT_DRIVER",
    "DEFAULT_PROPAGATION",
    "MountPoint",
    "MountRequest",
    "MountType",
    "Origin",
    "SpecMount",
    "Volume",
]
