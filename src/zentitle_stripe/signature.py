"""Moved to [`zentitle_stripe.stripe.signature`][zentitle_stripe.stripe.signature]; this
alias keeps old imports working."""

from __future__ import annotations

from .stripe import signature as _moved
from .stripe.signature import *  # noqa: F403

__all__ = _moved.__all__
