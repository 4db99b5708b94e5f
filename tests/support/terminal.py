"""A client process (the docker CLI) on a pseudo-terminal of the test's own.

The test holds the master end: what it writes is typed at the client's terminal, and
what the client prints is read back from it. Nothing is faked: the CLI sees a real
TTY, puts it in raw mode, reads keys one at a time and asks for the window size.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence

import attrs

#: How long a test waits for an expected output before it fails.
EXPECT_TIMEOUT = 30.0


@attrs.define(eq=False)
class Terminal:
    proc: subprocess.Popen[bytes]
    master: int
    seen: bytearray = attrs.field(factory=bytearray)
    read_to: int = 0  # where the next `expect` starts looking

    @classmethod
    def spawn(cls, argv: Sequence[str], env: Mapping[str, str], rows: int = 24,
              columns: int = 80) -> Terminal:
        master, slave = pty.openpty()
        set_size(slave, rows, columns)
        try:
            proc = subprocess.Popen(list(argv), env=dict(env), stdin=slave, stdout=slave,
                                    stderr=slave, start_new_session=True)
        finally:
            os.close(slave)
        return cls(proc, master)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def press_one_by_one(self, keys: bytes, pause: float = 0.15) -> None:
        """Keys as a person types them: the docker CLI only takes a detach sequence
        that arrives one key per read."""
        for key in keys:
            os.write(self.master, bytes([key]))
            time.sleep(pause)

    def expect(self, marker: bytes, timeout: float = EXPECT_TIMEOUT) -> bytes:
        """Everything printed from the last match through `marker`."""
        deadline = time.monotonic() + timeout
        while True:
            at = self.seen.find(marker, self.read_to)
            if at >= 0:
                out = bytes(self.seen[self.read_to : at + len(marker)])
                self.read_to = at + len(marker)
                return out
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"no {marker!r} in {bytes(self.seen[self.read_to:])!r}")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the client has exited and closed the terminal
            return False
        self.seen += chunk
        return bool(chunk)

    def resize(self, rows: int, columns: int) -> None:
        """A new window size, and the SIGWINCH a terminal emulator sends with it."""
        set_size(self.master, rows, columns)
        self.proc.send_signal(signal.SIGWINCH)

    def wait(self, timeout: float = EXPECT_TIMEOUT) -> int:
        """The client's exit status, reading its output meanwhile (a full pty blocks it)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the client did not exit; it printed "
                                     f"{bytes(self.seen[self.read_to:])!r}")
            self._read(0.05)
        while self._read(0):  # what it printed last
            pass
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
