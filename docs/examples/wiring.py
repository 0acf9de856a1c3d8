"""Wire the provisioner in code, e.g. with secrets from a vault instead of the environment.

``Provisioner.from_env()`` does the same from environment variables, validated up front.
"""

from __future__ import annotations

from collections.abc import Mapping

from zentitle_stripe import Provisioner
from zentitle_stripe.storage import SQLiteStorage
from zentitle_stripe.stripe_api import StripeGateway
from zentitle_stripe.zentitle import ZentitleClient


def build_provisioner(secrets: Mapping[str, str], *, database: str) -> Provisioner:
    """``secrets`` holds the values the environment variables of the same names would."""
    zentitle = ZentitleClient(
        secrets["ZENTITLE_API_URL"],  # https://{tenant}.api.nalpeiron.io
        secrets["ZENTITLE_TENANT_ID"],
        secrets["ZENTITLE_CLIENT_ID"],
        secrets["ZENTITLE_CLIENT_SECRET"],
        secrets["ZENTITLE_TOKEN_URL"],  # .../realms/{tenant}/protocol/openid-connect/token
        timeout=10.0,
        max_retries=3,  # safe requests only; creates and renewals are never blindly repeated
    )
    stripe = StripeGateway(
        secrets["STRIPE_API_KEY"],
        api_base=secrets.get("STRIPE_API_BASE") or None,  # unset for the real Stripe
        timeout=10.0,
    )
    return Provisioner(
        webhook_secrets=secrets["STRIPE_WEBHOOK_SECRET"].split(","),  # several while rotating
        storage=SQLiteStorage(database),
        zentitle=zentitle,
        stripe=stripe,
        zentitle_webhook_key=secrets.get("ZENTITLE_WEBHOOK_PUBLIC_KEY") or None,
        seat_policy="multiply",  # quantity 3 -> 3 x the offering's seats
    )
