"""Serving an emulator as a plain ASGI 3 app (what `FakeService.serve` runs under uvicorn).

Kept apart from [`FakeService`][zentitle_stripe.testing.FakeService] so the base stays
small; the faults behave as in process: `slow` waits before the backend sees the request
(it lands even if the client gave up), held faults wait, network faults drop the
connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from ._faults import NETWORK

if TYPE_CHECKING:
    from ._fake import FakeService

__all__ = ["serve_asgi"]

_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def serve_asgi(
    service: FakeService[Any], scope: _Scope, receive: _Receive, send: _Send
) -> None:
    """Answer one ASGI connection (`lifespan` or `http`) from `service`."""
    from ._fake import Incoming  # the base imports this module

    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    incoming = Incoming(
        scope["method"],
        scope["path"],
        scope.get("query_string", b"").decode("latin-1"),
        {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
        body,
    )
    fault = service._take_fault(incoming)
    if fault is not None and fault.kind == "slow":
        await asyncio.sleep(fault.delay)  # lands even if the client gave up meanwhile
    reply = service._serve(incoming, fault)
    if reply.fault in service._held_faults:
        await asyncio.sleep(reply.delay)
    elif reply.fault in NETWORK:
        raise ConnectionAbortedError(f"emulated {reply.fault} fault")
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.content})
