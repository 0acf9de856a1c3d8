"""Moved to [`zentitle_stripe.stripe`][zentitle_stripe.stripe]; this alias keeps old
imports working.

The typed results live in `zentitle_stripe.stripe.models`, the protocols in
`zentitle_stripe.stripe.api` and the gateway in `zentitle_stripe.stripe.gateway`.
"""

from __future__ import annotations

from .stripe import api, gateway, models
from .stripe.api import *  # noqa: F403
from .stripe.gateway import *  # noqa: F403
from .stripe.models import *  # noqa: F403

__all__ = [*api.__all__, *gateway.__all__, *models.__all__]
