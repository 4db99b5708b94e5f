"""The built-in log drivers' hook, named by moorage's `moorage.plugins` entry point.

A package installed with an entry point in the same group may add drivers or replace
these by name (it loads after this one).
"""

from __future__ import annotations

from collections.abc import Sequence

from log_drivers.file import FileDriver
from log_drivers.none import NoneDriver
from plugins import hookimpl
from plugins.contracts import LogDriver


@hookimpl
def moorage_log_drivers() -> Sequence[LogDriver]:
    return [FileDriver("json-file"), FileDriver("k8s-file"), FileDriver("local"), NoneDriver()]
