"""`docker top` and `docker diff` against moord."""

from __future__ import annotations

import secrets
import time

import pytest

from tests.support.daemon import Moord

pytestmark = [pytest.mark.integration, pytest.mark.cgroup_v2]


def test_top_and_diff(moord: Moord) -> None:
    name = f"td-{secrets.token_hex(3)}"
    moord.docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                 "mkdir /added && echo x > /added/f"
                 " && echo extra:x:5000:5000::/:/bin/sh >> /etc/passwd && rm /bin/vi"
                 " && echo ready && sleep 300")
    try:
        deadline = time.monotonic() + 20
        while "ready" not in moord.docker("logs", name).stdout:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        top = moord.docker("top", name).stdout.splitlines()
        assert top[0].split()[:2] == ["UID", "PID"]
        assert any("sleep 300" in line for line in top[1:])
        assert 2 <= len(top) <= 3  # sleep (and sh, if busybox kept it): nothing of the host's
        aux = moord.docker("top", name, "aux").stdout.splitlines()
        assert "COMMAND" in aux[0]
        diff = set(moord.docker("diff", name).stdout.splitlines())
        assert "A /added" in diff
        assert "A /added/f" in diff
        assert "C /etc" in diff
        assert "C /etc/passwd" in diff
        assert "D /bin/vi" in diff
        assert not any(line.endswith(("/etc/hosts", "/etc/resolv.conf")) for line in diff)
        moord.docker("stop", "-t", "0", name)
        stopped = moord.docker("top", name, check=False)
        assert stopped.returncode != 0
        assert "is not running" in stopped.stderr
    finally:
        moord.docker("rm", "-f", name, check=False)
