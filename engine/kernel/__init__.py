"""Thin bindings to the Linux kernel that the engine and its drivers share.

libc calls (mount, umount2, unshare, setns), netlink, network namespaces and inotify
live here, once, so a driver package uses the engine's helpers instead of carrying its
own; nothing in this package knows about containers, images or the API.
"""
