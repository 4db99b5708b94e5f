"""Writing a stream of small chunks (a request body, a download) to a file in batches.

A blocking write per chunk would cost one worker-thread hop per 16-64 KiB; joining
chunks into batches of a few MiB makes the hops rare. Every body moord stores (image
uploads, build contexts, `docker cp` archives, blob downloads) goes through here.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable

import trio

#: Bytes gathered before one blocking write.
BATCH = 4 * 1024 * 1024


async def write_in_batches(chunks: AsyncIterable[bytes], write: Callable[[bytes], object], *,
                           batch: int = BATCH,
                           on_chunk: Callable[[int], None] | None = None) -> int:
    """Hand `chunks` to the blocking `write` in a worker thread, `batch` bytes at a time;
    the number of bytes written.

    What has arrived is written even when the source fails part-way (a broken
    download keeps its bytes for a resume); the failure is then raised.
    """
    pending: list[bytes] = []
    gathered = 0
    written = 0
    try:
        async for chunk in chunks:
            pending.append(chunk)
            gathered += len(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
            if gathered >= batch:
                data = b"".join(pending)
                pending, gathered = [], 0
                await trio.to_thread.run_sync(write, data)
                written += len(data)
    finally:
        if pending:
            data = b"".join(pending)
            await trio.to_thread.run_sync(write, data)
            written += len(data)
    return written


__all__ = ["BATCH", "write_in_batches"]
