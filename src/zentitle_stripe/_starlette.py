"""What the FastAPI adapter and the standalone server share: both speak Starlette."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .responses import WebhookResponse


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body as received, but never more than `limit + 1` bytes: enough for the
    core to answer 413, whatever the sender declared or streams."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)


def render(response: WebhookResponse) -> Response:
    """The core's neutral response as a Starlette response, unchanged."""
    return Response(response.body, response.status, headers=dict(response.headers))
