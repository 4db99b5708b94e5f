"""The runtime path: OCI spec, conmon, crun/runc, cgroups, mounts."""
