"""Making a container's OCI bundle: its overlay root, its /etc files and config.json.

All the blocking work of a start (mount, reading the image's /etc/passwd, writing
files) happens in one worker-thread hop, because each hop costs latency.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
import trio

from engine import fsutil
from engine.containers.layout import ContainerPaths
from engine.containers.model import Container
from engine.containers.namespaces import Namespaces
from engine.runtime import mounts
from engine.runtime.devices import Device, devices_from_path, host_devices, parse_cgroup_rule
from engine.runtime.ocimounts import Mount
from engine.runtime.rlimits import rlimits_for_spec
from engine.runtime.security import parse_security_opt, select_seccomp
from engine.runtime.spec import SpecInputs, build_spec
from engine.runtime.users import ProcessUser, resolve_user
from engine.store import to_json_bytes

if TYPE_CHECKING:
    from engine.config import DaemonConfig
    from engine.images.store import ImageStore
    from engine.networks.model import Attachment
    from engine.runtime.host import HostProfile
    from engine.volumes.service import VolumeService

@attrs.define(eq=False)
class BundleMaker:
    config: DaemonConfig
    host: HostProfile
    images: ImageStore

    async def prepare(self, c: Container, paths: ContainerPaths, *, cgroups_path: str,
                      attachment: Attachment, volumes: VolumeService | None = None,
                      link_env: Sequence[str] = (),
                      etc_from: ContainerPaths | None = None,
                      namespaces: Namespaces | None = None) -> None:
        """Mount the root and write the bundle. `link_env`: the variables of legacy links
        (the container's own env wins); `etc_from`: the container whose /etc/hostname,
        hosts and resolv.conf this one shares (`container:` network mode); `namespaces`:
        the IPC, PID, UTS and cgroup namespaces (`namespaces.at_start`)."""
        image = self.images.get(c.image_id)
        if image is None:
            from engine.errors import NotFound

            raise NotFound(f"No such image: {c.image_id}")
        # short l/<link> names from layers/: images of up to 128 layers fit one mount
        lowerdirs = self.images.layer_links(image)
        await trio.to_thread.run_sync(
            functools.partial(mounts.mount_overlay, lowerdirs, paths.upper, paths.work,
                              paths.rootfs, base=self.images.layers_dir)
        )
        try:
            extra: list[Mount] = []
            if volumes is not None and c.mounts:
                specs = await volumes.mount_for_start(c.id, c.mounts, rootfs=paths.rootfs)
                extra = [s.to_oci() for s in specs]
            if c.host.ipc_mode == "shareable":
                await trio.to_thread.run_sync(mounts.mount_shm, paths.shm, c.host.shm_size)
                extra.append(Mount.bind(str(paths.shm), "/dev/shm"))
            await trio.to_thread.run_sync(self._prepare_sync, c, paths, cgroups_path, extra,
                                          attachment, tuple(link_env), etc_from,
                                          namespaces or Namespaces())
        except BaseException:
            with trio.CancelScope(shield=True):
                if volumes is not None:
                    await volumes.unmount_after_stop(c.id, c.mounts)
                await self.unmount(paths)
            raise

    async def unmount(self, paths: ContainerPaths) -> None:
        """Unmount the overlay root and the shareable /dev/shm `prepare` mounted (not
        mounted: nothing to do)."""
        await trio.to_thread.run_sync(mounts.unmount, paths.rootfs)
        await trio.to_thread.run_sync(mounts.unmount, paths.shm)

    def _prepare_sync(self, c: Container, paths: ContainerPaths, cgroups_path: str,
                      extra: list[Mount], attachment: Attachment, link_env: tuple[str, ...],
                      etc_from: ContainerPaths | None, namespaces: Namespaces) -> None:
        """The blocking part; `prepare` undoes the mounts if it fails."""
        user = resolve_user(paths.rootfs, c.spec.user, c.host.group_add)
        if etc_from is None:
            self._write_etc_files(c, paths, attachment, host_uts=namespaces.uts == "host")
        spec = build_spec(self._inputs(c, paths, user, cgroups_path,
                                       [*namespaces.shm_mounts, *extra], attachment,
                                       link_env, etc_from or paths, namespaces))
        fsutil.atomic_write(paths.config_json, to_json_bytes(spec), mode=0o600, durable=False)

    def _write_etc_files(self, c: Container, paths: ContainerPaths,
                         attachment: Attachment, *, host_uts: bool) -> None:
        """/etc/hostname is ours; /etc/hosts and resolv.conf come from the network service."""
        host_mode = attachment.network_ns == "host" or host_uts
        hostname = socket.gethostname() if host_mode else c.spec.hostname
        paths.hostname_file.write_text(hostname + "\n")
        paths.hosts_file.write_text(attachment.hosts)
        paths.resolv_conf.write_text(attachment.resolv_conf)

    def _inputs(self, c: Container, paths: ContainerPaths, user: ProcessUser,
                cgroups_path: str, extra: list[Mount], attachment: Attachment,
                link_env: tuple[str, ...], etc: ContainerPaths,
                namespaces: Namespaces) -> SpecInputs:
        env = [*link_env, *c.spec.env]
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={user.home or '/'}")
        etc_mounts = [
            Mount.bind(str(etc.hostname_file), "/etc/hostname"),
            Mount.bind(str(etc.hosts_file), "/etc/hosts"),
            Mount.bind(str(etc.resolv_conf), "/etc/resolv.conf"),
        ]
        security = parse_security_opt(c.host.security_opt)
        limits = c.host.limits()
        if (limits.pids_limit or 0) <= 0:
            # unlimited is the absence of a limit: crun 1.8 writes -1 to v1's pids.max and fails
            limits.pids_limit = None
        host_uts = attachment.network_ns == "host" or namespaces.uts == "host"
        return SpecInputs(
            args=(c.path, *c.args),
            rootfs=str(paths.rootfs),
            env=tuple(env),
            cwd=c.spec.working_dir or "/",
            user=user,
            terminal=c.spec.tty,
            console_size=c.host.console_size,
            hostname="" if host_uts else c.spec.hostname,
            domainname=c.spec.domainname,
            readonly_rootfs=c.host.readonly_rootfs,
            privileged=c.host.privileged,
            cap_add=tuple(c.host.cap_add),
            cap_drop=tuple(c.host.cap_drop),
            no_new_privileges=security.no_new_privileges,
            writable_cgroups=security.writable_cgroups,
            seccomp_profile=select_seccomp(security.seccomp, self.host.seccomp_profile or "unconfined"),
            rlimits=rlimits_for_spec(c.host.ulimits),
            oom_score_adj=c.host.oom_score_adj,
            network_ns=attachment.network_ns,
            network_ns_owned=attachment.network_ns_owned,
            uts_ns="host" if host_uts else "",
            ipc_ns=namespaces.ipc,
            pid_ns=namespaces.pid,
            cgroup_ns=namespaces.cgroup,
            mounts=tuple(etc_mounts + list(extra or [])),
            shm_size=c.host.shm_size,
            init_binary=self.host.init_path if c.host.init else "",
            devices=_devices(c),
            device_rules=() if c.host.privileged else tuple(
                parse_cgroup_rule(rule) for rule in c.host.device_cgroup_rules),
            cgroups_path=cgroups_path,
            resources=limits,
            sysctls=dict(c.host.sysctls),
            annotations=dict(c.host.annotations),
        )


def _devices(c: Container) -> tuple[Device, ...]:
    """The device nodes `c` gets: its `--device`s (looked up now: a node may come and
    go between starts), and a privileged container every node of the host's /dev
    besides. Blocking."""
    mapped: list[Device] = []
    for d in c.host.devices:
        if c.host.privileged and d.path_on_host == d.path_in_container:
            continue  # the host's /dev has it already
        mapped.extend(devices_from_path(d.path_on_host, d.path_in_container,
                                        "rwm" if c.host.privileged else d.cgroup_permissions))
    if c.host.privileged:
        return host_devices() + tuple(mapped)
    return tuple(mapped)
