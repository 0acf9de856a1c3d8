"""Alias of [`zentitle_stripe.zentitle.webhooks`][zentitle_stripe.zentitle.webhooks], its old home.

Kept so `from zentitle_stripe.zentitle_webhooks import ...` goes on working.
"""

from __future__ import annotations

from .zentitle import webhooks as _webhooks
from .zentitle.webhooks import *  # noqa: F403

__all__ = _webhooks.__all__
