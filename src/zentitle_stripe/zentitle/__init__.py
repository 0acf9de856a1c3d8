"""Zentitle2 Management API: typed models, the :class:`ZentitleAPI` protocol and its client."""

from __future__ import annotations

from .client import DEFAULT_API_VERSION, ZentitleAPI, ZentitleClient
from .models import (
    Contact,
    Customer,
    Entitlement,
    EntitlementGroup,
    Interval,
    Offering,
    Plan,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "Contact",
    "Customer",
    "Entitlement",
    "EntitlementGroup",
    "Interval",
    "Offering",
    "Plan",
    "ZentitleAPI",
    "ZentitleClient",
]
