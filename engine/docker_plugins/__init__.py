"""Docker's plugin protocol: plugins that run beside moord and speak JSON over HTTP.

`discovery` finds a plugin's address by name, `client` calls it (Docker's content type,
retries and a deadline on every call), `registry` activates plugins lazily and keeps
them, `volumes` adapts a VolumeDriver plugin to `plugins.volume_contract`, `authz`
asks authorization plugins about API requests. See docs/plugins.md, "Docker plugins".
"""
