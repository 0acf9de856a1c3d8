"""Moved to [`zentitle_stripe.stripe.events`][zentitle_stripe.stripe.events]; this alias
keeps old imports working."""

from __future__ import annotations

from .stripe import events as _moved
from .stripe.events import *  # noqa: F403

__all__ = _moved.__all__
