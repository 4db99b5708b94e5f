"""The forms of `--ipc/--pid/--uts/--cgroupns` accepted at create, with dockerd's words."""

from __future__ import annotations

import pytest

from engine.containers.model import HostSpec
from engine.containers.namespaces import check_modes
from engine.errors import InvalidParameter


@pytest.mark.parametrize("fields", [
    {}, {"ipc_mode": "shareable"}, {"ipc_mode": "none"}, {"ipc_mode": "host"},
    {"ipc_mode": "container:db"}, {"pid_mode": "host"}, {"pid_mode": "container:abc"},
    {"uts_mode": "host"}, {"cgroupns_mode": "private"}, {"cgroupns_mode": "host"},
])
def test_docker_forms_are_accepted(fields: dict[str, str]) -> None:
    check_modes(HostSpec(**fields))


@pytest.mark.parametrize(("fields", "message"), [
    ({"ipc_mode": "bogus"}, "invalid IPC mode: bogus"),
    ({"ipc_mode": "container:"}, "invalid IPC mode: container:"),
    ({"pid_mode": "private"}, "invalid PID mode: private"),
    ({"uts_mode": "container:x"}, "invalid UTS mode: container:x"),
    ({"cgroupns_mode": "shared"}, "invalid cgroup namespace mode: shared"),
])
def test_other_forms_are_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        check_modes(HostSpec(**fields))
