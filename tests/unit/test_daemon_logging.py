"""Where moord's log goes (journal, rotated file, stderr) and the file's rotation."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import DaemonConfig
from engine.daemon_logging import choose_target, configure_logging


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """configure_logging replaces the root logger's handlers: put pytest's back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield root
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def test_auto_picks_the_journal_under_systemd_and_the_file_otherwise(tmp_path: Path) -> None:
    config = DaemonConfig()
    # pytest's stderr is no terminal and no journal stream
    assert choose_target(config, {}) == "file"
    assert choose_target(config, {"JOURNAL_STREAM": "1:1"}) == "file"
    assert choose_target(DaemonConfig(log_target="stderr"), {}) == "stderr"
    assert choose_target(DaemonConfig(log_target="journal"), {}) == "journal"


def test_the_file_rotates_by_size_and_keeps_count_copies(tmp_path: Path,
                                                         root_logger: logging.Logger) -> None:
    log_file = tmp_path / "logs" / "moord.log"
    config = DaemonConfig(log_target="file", log_file=log_file, log_file_max_size="1k",
                          log_file_max_count=2, log_level="debug")
    assert configure_logging(config, {}) == "file"
    for i in range(200):
        logging.getLogger("moord").info("line %d of a log that outgrows its file", i)
    names = sorted(p.name for p in log_file.parent.iterdir())
    assert names == ["moord.log", "moord.log.1", "moord.log.2"]
    assert all(p.stat().st_size <= 1024 for p in log_file.parent.iterdir())
    assert "line 199 of" in log_file.read_text()
    assert "INFO moord: line" in log_file.read_text()
    assert {p.stat().st_mode & 0o777 for p in log_file.parent.iterdir()} == {0o640}


def test_the_level_applies(tmp_path: Path, root_logger: logging.Logger) -> None:
    config = DaemonConfig(log_target="file", log_file=tmp_path / "moord.log", log_level="warning")
    configure_logging(config, {})
    logging.getLogger("moord").info("not written")
    logging.getLogger("moord").warning("written")
    assert "not written" not in (tmp_path / "moord.log").read_text()
    assert "written" in (tmp_path / "moord.log").read_text()
