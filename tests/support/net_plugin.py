"""The third-party network driver package of the tests (tests/plugins/moorage_testnet)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.support.plugin_package import installed

DRIVER = "testnet"


@contextlib.contextmanager
def network_plugin_installed() -> Iterator[None]:
    with installed("moorage_testnet", "moorage-testnet"):
        yield
