"""The batching writer: few blocking writes, nothing lost, a broken source keeps its bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from engine.batching import write_in_batches


async def _source(chunks: list[bytes], fail_after: bool = False) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await trio.lowlevel.checkpoint()
        yield chunk
    if fail_after:
        raise OSError("connection reset")


async def test_batches_and_counts() -> None:
    writes: list[bytes] = []
    seen: list[int] = []
    chunks = [bytes([i]) * 10 for i in range(7)]
    total = await write_in_batches(_source(chunks), writes.append, batch=25, on_chunk=seen.append)
    assert total == 70
    assert b"".join(writes) == b"".join(chunks)
    assert [len(w) for w in writes] == [30, 30, 10]
    assert seen == [10] * 7


async def test_a_failing_source_keeps_what_arrived() -> None:
    writes: list[bytes] = []
    with pytest.raises(OSError, match="connection reset"):
        await write_in_batches(_source([b"abc", b"def"], fail_after=True), writes.append,
                               batch=1 << 20)
    assert b"".join(writes) == b"abcdef"
