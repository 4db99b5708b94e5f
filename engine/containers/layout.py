"""Where a container's files live on disk, in one place."""

from __future__ import annotations

from pathlib import Path

import attrs


@attrs.frozen
class ContainerPaths:
    """`<data-root>/containers/<id>/`: the writable layer, the OCI bundle, conmon's files."""

    root: Path

    @classmethod
    def under(cls, data_root: Path, container_id: str) -> ContainerPaths:
        return cls(cls.parent_under(data_root) / container_id)

    @staticmethod
    def parent_under(data_root: Path) -> Path:
        """The directory that holds every container's."""
        return data_root / "containers"

    @property
    def upper(self) -> Path:
        return self.root / "upper"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def bundle(self) -> Path:
        """conmon makes its `attach` socket and `ctl`/`winsz` FIFOs here."""
        return self.root / "bundle"

    @property
    def rootfs(self) -> Path:
        return self.bundle / "rootfs"

    @property
    def config_json(self) -> Path:
        return self.bundle / "config.json"

    @property
    def userdata(self) -> Path:
        """conmon's cwd and persist dir: `exit`, `oom`, `conmon.pid`, `pidfile`."""
        return self.root / "userdata"

    @property
    def shm(self) -> Path:
        """A `--ipc shareable` container's /dev/shm: a tmpfs on the host, so that the
        containers joining its IPC namespace can be given the same one."""
        return self.root / "shm"

    @property
    def log(self) -> Path:
        return self.root / "ctr.log"

    @property
    def hostname_file(self) -> Path:
        return self.root / "hostname"

    @property
    def hosts_file(self) -> Path:
        return self.root / "hosts"

    @property
    def resolv_conf(self) -> Path:
        return self.root / "resolv.conf"
