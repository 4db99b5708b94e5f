"""The drivers that hang on purpose (tests/plugins/moorage_hangdriver)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.support.plugin_package import installed


@contextlib.contextmanager
def hang_plugin_installed() -> Iterator[None]:
    with installed("moorage_hangdriver", "moorage-hangdriver"):
        yield
