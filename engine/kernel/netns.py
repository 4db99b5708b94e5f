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
import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from engine.kernel import libc
from engine.kernel.libc import CLONE_NEWNET, MNT_DETACH, MS_BIND

log = logging.getLogger(__name__)

_SELF = "/proc/thread-self/ns/net"


@contextlib.contextmanager
def _doing(what: str) -> Iterator[None]:
    """A failed system call in the body says what it was for: "`what`: <reason>"."""
    try:
        yield
    except OSError as exc:
        raise OSError(exc.errno, f"{what}: {exc.strerror}") from None


def _restore(original_fd: int) -> None:
    """Put this thread back in its original namespace, or end the process."""
    try:
        libc.setns(original_fd, CLONE_NEWNET)
    except OSError as exc:
        log.critical("cannot return a worker thread to moord's network namespace (%s); "
                     "exiting so no host-side work runs in a container's namespace",
                     exc.strerror)
        os._exit(70)


@contextlib.contextmanager
def in_netns(path: str | Path) -> Iterator[None]:
    """Run the body with this thread in the namespace at `path`; always switch back."""
    original = os.open(_SELF, os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with _doing(f"entering the network namespace {path}"):
                libc.setns(target, CLONE_NEWNET)
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
            with _doing("creating a network namespace"):
                libc.unshare(CLONE_NEWNET)
            try:
                with _doing(f"bind-mounting the network namespace on {target}"):
                    libc.mount(_SELF.encode(), os.fsencode(target), None, MS_BIND, None)
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
    try:
        libc.umount2(target, MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):  # not a mount point; no file
            raise OSError(exc.errno, f"unmounting {path}: {exc.strerror}") from None
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
