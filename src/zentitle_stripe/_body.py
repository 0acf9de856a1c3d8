"""Reading a request body without trusting its size (the WSGI adapters share this)."""

from __future__ import annotations

from collections.abc import Callable


def read_bounded(read: Callable[[int], bytes], limit: int) -> bytes:
    """The raw body as received, but never more than `limit + 1` bytes: enough for the
    core to answer 413, whatever the sender declared or streams. `read(n)` returns at
    most `n` bytes, `b""` at the end."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
