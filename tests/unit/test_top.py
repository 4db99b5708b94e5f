"""`docker top`'s reading of `ps` output."""

from __future__ import annotations

import pytest

from engine.containers.top import parse_ps
from engine.errors import InvalidParameter

PS = """\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root        4242       1  0 10:01 ?        00:00:00 sleep 300 with spaces
"""


def test_rows_of_the_container_only() -> None:
    result = parse_ps(PS, {4242})
    assert result.titles == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert result.processes == [["root", "4242", "1", "0", "10:01", "?", "00:00:00",
                                 "sleep 300 with spaces"]]


def test_ps_args_without_pid() -> None:
    with pytest.raises(InvalidParameter, match="Couldn't find PID field"):
        parse_ps("USER COMMAND\nroot sh\n", {1})
