"""moord refuses to start, with the reason, on a host it can't run containers on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.daemon import Moord


def test_moord_explains_a_missing_conmon(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    with pytest.raises(RuntimeError, match="moord exited") as info:
        d.start("--conmon-path", "/nonexistent/conmon", timeout=15)
    assert "this host cannot run containers: conmon is not installed" in str(info.value)


def test_runc_works_as_the_runtime(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    d.start("--runtime", "runc")
    d.import_busybox()
    assert d.docker("info", "--format", "{{.DefaultRuntime}}").stdout.strip() == "runc"
    assert d.docker("run", "--rm", "busybox", "echo", "via runc").stdout == "via runc\n"
