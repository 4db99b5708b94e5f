"""Where moord's own log goes: the journal (with fields), a rotated file, or stderr.

`log-target auto` picks the journal when systemd runs moord (its stderr is a journal
stream), stderr on a terminal (moord run by hand), and the rotated `log-file` otherwise
(moord started in the background by something else). Tests ask for stderr.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from collections.abc import Mapping

from engine.config import DaemonConfig
from engine.systemd.journal import JournalHandler, under_journal
from engine.units import ram_in_bytes

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: one line per registry request or netlink message is noise at any level but debug
CHATTY = ("httpx", "httpcore", "hpack", "pyroute2")


class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """Each file it opens (the first and every one after a rotation) is 0640: moord's log
    names containers, images and registries, not for every local user to read."""

    def _open(self):  # type: ignore[no-untyped-def]  # typeshed's signature varies
        stream = super()._open()
        os.fchmod(stream.fileno(), 0o640)
        return stream


def choose_target(config: DaemonConfig, environ: Mapping[str, str]) -> str:
    if config.log_target != "auto":
        return config.log_target
    if under_journal(environ):
        return "journal"
    return "stderr" if sys.stderr.isatty() else "file"


def _handler(target: str, config: DaemonConfig) -> logging.Handler:
    if target == "journal":
        handler: logging.Handler = JournalHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        return handler
    if target == "file":
        config.log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = _PrivateRotatingFile(
            config.log_file, maxBytes=ram_in_bytes(config.log_file_max_size),
            backupCount=config.log_file_max_count, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    return handler


def configure_logging(config: DaemonConfig, environ: Mapping[str, str] | None = None) -> str:
    """Send the root logger to the chosen target; returns that target's name."""
    target = choose_target(config, os.environ if environ is None else environ)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    handler = _handler(target, config)
    handler.addFilter(_quiet_libraries)
    root.addHandler(handler)
    set_level(config.log_level)
    return target


def _quiet_libraries(record: logging.LogRecord) -> bool:
    """Only warnings and worse from the chatty libraries. A filter on the handler, not
    their loggers' levels: pyroute2 resets its own level when it loads its parts."""
    if record.levelno >= logging.WARNING:
        return True
    return not any(record.name == c or record.name.startswith(c + ".") for c in CHATTY)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(getattr(logging, level.upper(), logging.INFO))
