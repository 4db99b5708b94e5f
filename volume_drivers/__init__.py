"""Volume drivers (local, bind, tmpfs): `local` is a driver plugin, registered by
`volume_drivers.builtins`; bind and tmpfs mounts are set up by the engine itself
(`engine.volumes`), read-only honoured by all three."""
