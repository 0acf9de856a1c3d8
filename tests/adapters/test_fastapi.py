"""What only the FastAPI adapter has: an APIRouter whose webhooks stay out of the OpenAPI
schema (Stripe and Zentitle2 are their only callers).

The scenarios every adapter shares are in `test_adapters.py`.
"""

from __future__ import annotations

import pytest

from zentitle_stripe.testing import EmulatedWorld

pytest.importorskip("fastapi")

from fastapi import FastAPI

from zentitle_stripe.fastapi import make_router


def test_the_webhooks_are_not_in_the_openapi_schema(world: EmulatedWorld) -> None:
    router = make_router(world.provisioner)
    assert {route.path for route in router.routes} == {"/stripe/webhook", "/zentitle/webhook"}  # type: ignore[attr-defined]
    app = FastAPI()
    app.include_router(router)
    assert app.openapi()["paths"] == {}
