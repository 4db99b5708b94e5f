"""An OSError reaches clients in Go's words, as dockerd's errors do: clients and users
match on "no space left on device", not Python's "[Errno 28] No space left on device"."""

from __future__ import annotations

import errno
import os

from engine.errors import SystemFailure, system_failure


def test_enospc_in_dockerd_words() -> None:
    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    failure = system_failure(exc, "commit")
    assert isinstance(failure, SystemFailure)
    assert failure.message == "commit: no space left on device"


def test_the_file_is_named_when_known() -> None:
    exc = OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), "/data/images/tmp/commit-1")
    assert system_failure(exc, "commit").message == (
        "commit /data/images/tmp/commit-1: disk quota exceeded")
