"""Reading a request body without trusting its size (the WSGI adapters share this), and
answering an upload the client aborted (every adapter shares that)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .responses import Outcome, OutcomeKind, WebhookResponse

logger = logging.getLogger("zentitle_stripe")


class UploadAborted(Exception):
    """The client went away while its body was being read (`received` bytes so far)."""

    def __init__(self, received: int) -> None:
        super().__init__(f"upload aborted after {received} bytes")
        self.received = received

    def response(self, source: str) -> WebhookResponse:
        """The quiet answer: see `client_disconnected`."""
        return client_disconnected(source, self.received)


def read_bounded(
    read: Callable[[int], bytes],
    limit: int,
    *,
    aborts: tuple[type[BaseException], ...] = (),
) -> bytes:
    """The raw body as received, but never more than `limit + 1` bytes: enough for the
    core to answer 413, whatever the sender declared or streams. `read(n)` returns at
    most `n` bytes, `b""` at the end; `aborts` are the errors by which the framework
    says the client disconnected, raised as `UploadAborted`."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        try:
            chunk = read(limit + 1 - size)
        except aborts as exc:
            raise UploadAborted(size) from exc
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


# -- aborted uploads ---------------------------------------------------------------------

DISCONNECTED_REASON = "the client disconnected before the whole body arrived; nothing was recorded"


def client_disconnected(source: str, received: int | None = None) -> WebhookResponse:
    """The answer to an upload the sender aborted, logged as one INFO line.

    Nothing was verified or recorded, so there is nothing to replay: the sender's retry
    brings the event back. It is not an error of ours, so no traceback (anyone can abort
    uploads, and must not be able to flood the log with them); the answer is usually
    never read.
    """
    size = "" if received is None else f" after {received} bytes"
    logger.info(
        "%s webhook: the client disconnected%s, before the whole body arrived; nothing recorded",
        source,
        size,
        extra={"source": source, "outcome": OutcomeKind.FAILED.value, "status": 400},
    )
    return WebhookResponse.build(400, Outcome(OutcomeKind.FAILED, DISCONNECTED_REASON))
