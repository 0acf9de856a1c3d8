"""Alias of [`zentitle_stripe.zentitle.router`][zentitle_stripe.zentitle.router], its old home.

Kept so `from zentitle_stripe.zentitle_router import Router` goes on working.
"""

from __future__ import annotations

from .zentitle import router as _router
from .zentitle.router import *  # noqa: F403

__all__ = _router.__all__
