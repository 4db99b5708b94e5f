"""The service manager's protocols, spoken by moord itself (no libsystemd, no new dependency).

`notify`: sd_notify datagrams (READY, STOPPING, RELOADING, WATCHDOG, STATUS).
`activation`: the listening sockets systemd hands over (LISTEN_FDS, LISTEN_PID).
`journal`: log records as journal entries with fields (the native protocol).
Each is inert when moord does not run under systemd. Nothing here imports the engine.
"""
