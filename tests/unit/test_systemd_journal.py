"""The journal client's native protocol, read back by a parser written from the protocol's
description, on a datagram socket the test made in journald's place."""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.systemd.journal import (
    JournalClient,
    JournalHandler,
    encode,
    priority,
    under_journal,
)
from tests.support.datagrams import datagram_socket, parse_journal_entry, receive_journal_entry


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "journal.sock")
    with datagram_socket(path, timeout=5, receive_buffer=4 << 20) as sock:
        yield path, sock


def test_plain_and_multiline_values() -> None:
    data = encode({"MESSAGE": "one\ntwo", "PRIORITY": "6"})
    assert data == b"MESSAGE\n" + struct.pack("<Q", 7) + b"one\ntwo\nPRIORITY=6\n"
    assert parse_journal_entry(data) == {"MESSAGE": "one\ntwo", "PRIORITY": "6"}


@pytest.mark.parametrize("name", ["_PID", "message", "A-B", ""])
def test_bad_field_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a journal field name"):
        encode({name: "x"})


def test_priorities() -> None:
    assert [priority(level) for level in (logging.CRITICAL, logging.ERROR, logging.WARNING,
                                          logging.INFO, logging.DEBUG)] == [2, 3, 4, 6, 7]


def test_a_record_with_moorage_fields(journald: tuple[str, socket.socket]) -> None:
    path, sock = journald
    handler = JournalHandler(JournalClient(path))
    logger = logging.getLogger("moord.test-journal")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        cid = "0123456789ab" + "c" * 52
        logger.warning("%s died", cid[:12], extra={"container_id": cid, "event": "die",
                                                   "container_name": "web"})
        entry = receive_journal_entry(sock)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert entry["MESSAGE"] == "0123456789ab died"
    assert entry["PRIORITY"] == "4"
    assert entry["SYSLOG_IDENTIFIER"] == "moord"
    assert entry["LOGGER"] == "moord.test-journal"
    assert entry["CODE_FILE"] == __file__
    assert entry["CODE_FUNC"] == "test_a_record_with_moorage_fields"
    assert int(entry["CODE_LINE"]) > 0
    assert entry["CONTAINER_ID"] == "0123456789ab"
    assert entry["CONTAINER_ID_FULL"] == cid
    assert entry["CONTAINER_NAME"] == "web"
    assert entry["EVENT"] == "die"


def test_an_entry_too_big_for_a_datagram_goes_as_a_memfd(
        journald: tuple[str, socket.socket]) -> None:
    path, sock = journald
    client = JournalClient(path)
    big = "x" * (4 << 20)
    client.send({"MESSAGE": big, "PRIORITY": "6"})
    assert receive_journal_entry(sock) == {"MESSAGE": big, "PRIORITY": "6"}
    client.close()


def test_an_absent_journal_falls_back_to_stderr(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    handler = JournalHandler(JournalClient(str(tmp_path / "no-journald")))
    handler.emit(logging.makeLogRecord({"msg": "still said", "levelno": logging.ERROR,
                                        "levelname": "ERROR"}))
    handler.close()
    assert capsys.readouterr().err == "<3>still said\n"


def test_under_journal_when_stderr_is_the_journal_stream(tmp_path: Path) -> None:
    with open(tmp_path / "stream", "w") as stream:
        st = os.fstat(stream.fileno())
        assert under_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stream.fileno(),
                             str(tmp_path / "none"))
        assert not under_journal({"JOURNAL_STREAM": "1:2"}, stream.fileno(),
                                 str(tmp_path / "none"))
    (tmp_path / "socket").touch()
    assert under_journal({"INVOCATION_ID": "abc"}, 2, str(tmp_path / "socket"))
    assert not under_journal({"INVOCATION_ID": "abc"}, 2, str(tmp_path / "none"))
    assert not under_journal({}, 2, str(tmp_path / "socket"))
