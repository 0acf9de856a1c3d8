"""What the FastAPI adapter and the standalone server share: both speak Starlette."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ._body import UploadAborted
from .responses import WebhookResponse

if TYPE_CHECKING:
    from .provisioner import Provisioner

Handle = Callable[[bytes, "str | None"], WebhookResponse]
"""A blocking entry point of the core: raw body and signature header in, answer out."""
Nowait = Callable[[bytes, "str | None"], "WebhookResponse | None"]
"""The core's answer when it takes no waiting, else `None` (`handle_event_nowait`)."""
Endpoint = Callable[[Request], Awaitable[Response]]


def webhook_endpoints(engine: Provisioner) -> tuple[Endpoint, Endpoint]:
    """The Stripe and the Zentitle2 webhook endpoints over `engine`."""
    limit = engine.max_body_bytes

    async def stripe_webhook(request: Request) -> Response:
        handle, nowait = engine.handle_event, engine.handle_event_nowait
        return await deliver(
            request, handle, limit=limit, header="stripe-signature", source="stripe", nowait=nowait
        )

    async def zentitle_webhook(request: Request) -> Response:
        handle = engine.handle_zentitle_event
        return await deliver(request, handle, limit=limit, header="n-signature", source="zentitle")

    return stripe_webhook, zentitle_webhook


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body as received, but never more than `limit + 1` bytes: enough for the
    core to answer 413, whatever the sender declared or streams.

    Raises `UploadAborted` when the client disconnects first.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                break
    except ClientDisconnect as exc:
        raise UploadAborted(size) from exc
    return b"".join(chunks)


async def deliver(
    request: Request,
    handle: Handle,
    *,
    limit: int,
    header: str,
    source: str,
    nowait: Nowait | None = None,
) -> Response:
    """One webhook delivery: read the body, run `handle` in the threadpool (the core
    blocks), render its answer. An aborted upload is one INFO line, not an error.

    `nowait` first, on the event loop: a delivery it answers (a refusal, an event that
    needs no work recorded without waiting, some 60 µs of CPU like a
    `construct_event`) skips the threadpool, whose hand-offs between 40 threads cost
    more than the work; it never waits on the disk or another process (at most 2 ms
    for a writer of this process), so the loop is not held up."""
    try:
        body = await read_body(request, limit)
    except UploadAborted as aborted:
        return render(aborted.response(source))
    signature = request.headers.get(header)
    answer = nowait(body, signature) if nowait is not None else None
    if answer is None:
        answer = await run_in_threadpool(handle, body, signature)
    return render(answer)


def render(response: WebhookResponse) -> Response:
    """The core's neutral response as a Starlette response, unchanged."""
    return Response(response.body, response.status, headers=dict(response.headers))
