"""Log drivers: `json-file` (also `k8s-file` and `local`) and `none`.

`log_drivers.builtins` registers them through the `moorage_log_drivers` hook, named by
an entry point of the moorage distribution as a third-party package's would be. The
file itself (conmon's k8s-file, its rotation, `docker logs`) is the engine's: these
drivers only say what they are and check their `--log-opt`s.
"""
