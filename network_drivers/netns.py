"""Network namespaces without forking: unshare/setns on the calling (worker) thread.

pyroute2's own helpers (`netns.create`, `IPRoute(netns=…)`, `NetNS`) fork a
multi-threaded process for every call; the runtime spike measured 16-23 ms each and
fork-with-threads is unsafe. Namespaces only affect the calling thread, so moord does
this instead, always inside `trio.to_thread.run_sync`:

- make a namespace: `unshare(CLONE_NEWNET)` on the worker thread, bind-mount
  `/proc/thread-self/ns/net` onto a file (that keeps the namespace alive without a
  process), then `setns` back to the thread's original namespace (1.2 ms);
- work in one: `with in_netns(path):` switches this thread and switches it back in a
  `finally`. trio reuses worker threads, so a thread left in a container's namespace
  would silently run later host-side work there; if switching back ever fails, moord
  exits at once (its containers keep running under conmon, and a restart is clean).

Everything here blocks; call it from a worker thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

_SELF = "/proc/thread-self/ns/net"


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _restore(original_fd: int) -> None:
    """Put this thread back in its original namespace, or end the process."""
    if _libc.setns(original_fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        log.critical("cannot return a worker thread to moord's network namespace (%s); "
                     "exiting so no host-side work runs in a container's namespace",
                     os.strerror(err))
        os._exit(70)


@contextlib.contextmanager
def in_netns(path: str | Path) -> Iterator[None]:
    """Run the body with this thread in the namespace at `path`; always switch back."""
    original = os.open(_SELF, os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.setns(target, CLONE_NEWNET), f"entering the network namespace {path}")
        finally:
            os.close(target)
        try:
            yield
        finally:
            _restore(original)
    finally:
        os.close(original)


def create_netns(path: str | Path) -> None:
    """A new network namespace kept alive by a bind mount on `path` (created; must not exist).

    Its loopback is brought up here, while the thread is inside it, so a container on
    any network has a working `lo`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    original = os.open(_SELF, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        os.close(fd)
        try:
            _check(_libc.unshare(CLONE_NEWNET), "creating a network namespace")
            try:
                _check(_libc.mount(_SELF.encode(), os.fsencode(target), None, MS_BIND, None),
                       f"bind-mounting the network namespace on {target}")
                _loopback_up()
            finally:
                _restore(original)
        except BaseException:
            delete_netns(target)
            raise
    finally:
        os.close(original)


def _loopback_up() -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:  # opened inside the namespace: bound to it
        lo = ipr.link_lookup(ifname="lo")
        if lo:
            ipr.link("set", index=lo[0], state="up")


def delete_netns(path: str | Path) -> None:
    """Unmount and remove a namespace file; quiet when it is already gone.

    The namespace itself ends when nothing holds it any more (no process, no mount), and
    with it every interface inside, which also removes the host ends of its veth pairs.
    """
    target = os.fsencode(Path(path))
    if _libc.umount2(target, MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (22, 2):  # EINVAL: not a mount point; ENOENT: no file
            raise OSError(err, f"unmounting {path}: {os.strerror(err)}")
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass


def is_netns(path: str | Path) -> bool:
    """True if `path` is a mounted network namespace file (it survives a moord restart)."""
    try:
        with open(path, "rb"):
            pass
        st = os.stat(path)
    except OSError:
        return False
    # an nsfs inode lives on the nsfs pseudo filesystem: its device differs from the dir's
    try:
        parent = os.stat(Path(path).parent)
    except OSError:
        return False
    return st.st_dev != parent.st_dev
