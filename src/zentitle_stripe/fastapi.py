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
    from fastapi import APIRouter
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing fastapi
    raise MissingExtraError("zentitle_stripe.fastapi", "fastapi") from exc

from ._starlette import webhook_endpoints
from .provisioner import Provisioner

__all__ = ["make_router"]


def make_router(
    provisioner: Provisioner,
    *,
    stripe_path: str = "/stripe/webhook",
    zentitle_path: str = "/zentitle/webhook",
) -> APIRouter:
    """An APIRouter with `POST stripe_path` (Stripe) and `POST zentitle_path` (Zentitle2).

    A client that disconnects before its body arrived is logged as one INFO line.
    """
    router = APIRouter()
    stripe_webhook, zentitle_webhook = webhook_endpoints(provisioner)
    router.add_api_route(stripe_path, stripe_webhook, methods=["POST"], include_in_schema=False)
    router.add_api_route(zentitle_path, zentitle_webhook, methods=["POST"], include_in_schema=False)
    return router
