"""The third-party volume driver package of the tests (tests/plugins/moorage_testvolume)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.support.plugin_package import installed

DRIVER = "testvol"


@contextlib.contextmanager
def volume_plugin_installed() -> Iterator[None]:
    with installed("moorage_testvolume", "moorage-testvolume"):
        yield
