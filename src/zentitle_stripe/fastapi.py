"""FastAPI adapter: an APIRouter that hands the raw body and signature header to the core.

The core is blocking (storage and HTTP calls), so it runs in the threadpool and the event
loop keeps serving other requests:

```python
app = FastAPI()
app.include_router(make_router(Provisioner.from_env()))
```
"""

from __future__ import annotations

from .exceptions import MissingExtraError

try:
    from fastapi import APIRouter, Request, Response
    from starlette.concurrency import run_in_threadpool
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing fastapi
    raise MissingExtraError("zentitle_stripe.fastapi", "fastapi") from exc

from ._starlette import read_body, render
from .provisioner import Provisioner

__all__ = ["make_router"]


def make_router(
    provisioner: Provisioner,
    *,
    stripe_path: str = "/stripe/webhook",
    zentitle_path: str = "/zentitle/webhook",
) -> APIRouter:
    """An APIRouter with `POST stripe_path` (Stripe) and `POST zentitle_path` (Zentitle2)."""
    router = APIRouter()

    @router.post(stripe_path, include_in_schema=False)
    async def stripe_webhook(request: Request) -> Response:
        body = await read_body(request, provisioner.max_body_bytes)
        signature = request.headers.get("stripe-signature")
        return render(await run_in_threadpool(provisioner.handle_event, body, signature))

    @router.post(zentitle_path, include_in_schema=False)
    async def zentitle_webhook(request: Request) -> Response:
        body = await read_body(request, provisioner.max_body_bytes)
        signature = request.headers.get("n-signature")
        return render(await run_in_threadpool(provisioner.handle_zentitle_event, body, signature))

    return router
