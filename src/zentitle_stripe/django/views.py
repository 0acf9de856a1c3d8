"""The Django views; see :mod:`zentitle_stripe.django`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .._body import read_bounded
from ..provisioner import Provisioner
from ..responses import WebhookResponse

__all__ = [
    "get_provisioner",
    "make_urlpatterns",
    "set_provisioner",
    "stripe_webhook",
    "zentitle_webhook",
]

View = Callable[[HttpRequest], HttpResponse]

_lock = threading.Lock()
_provisioner: Provisioner | None = None


def set_provisioner(provisioner: Provisioner | None) -> None:
    """Use ``provisioner`` from now on (``None``: build it from settings again on next use)."""
    global _provisioner
    with _lock:
        _provisioner = provisioner


def get_provisioner() -> Provisioner:
    """The provisioner, built once (thread-safe) from ``settings.ZENTITLE_STRIPE`` or the
    environment; a missing setting raises ``ConfigurationError`` naming it."""
    global _provisioner
    with _lock:
        if _provisioner is None:
            configured: Any = getattr(settings, "ZENTITLE_STRIPE", None)
            environ = None if configured is None else {k: str(v) for k, v in configured.items()}
            _provisioner = Provisioner.from_env(environ=environ)
        return _provisioner


def _render(response: WebhookResponse) -> HttpResponse:
    return HttpResponse(response.body, status=response.status, headers=dict(response.headers))


def _stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Stripe's webhook: raw body and ``Stripe-Signature`` go to ``handle_event``."""
    provisioner = get_provisioner()
    body = read_bounded(request.read, provisioner.max_body_bytes)
    signature = request.headers.get("Stripe-Signature")
    return _render(provisioner.handle_event(body, signature))


def _zentitle_webhook(request: HttpRequest) -> HttpResponse:
    """Zentitle2's webhook: raw body and ``N-Signature`` go to ``handle_zentitle_event``."""
    provisioner = get_provisioner()
    body = read_bounded(request.read, provisioner.max_body_bytes)
    signature = request.headers.get("N-Signature")
    return _render(provisioner.handle_zentitle_event(body, signature))


# Stripe and Zentitle2 cannot send a CSRF token: the signature is the authentication.
# (Decorators applied by hand: Django ships no type hints, so mypy would lose the types.)
stripe_webhook: View = csrf_exempt(require_POST(_stripe_webhook))
zentitle_webhook: View = csrf_exempt(require_POST(_zentitle_webhook))


def make_urlpatterns(
    stripe_path: str = "stripe/webhook", zentitle_path: str = "zentitle/webhook"
) -> list[URLPattern]:
    """URL patterns for both views at paths of your choice (no leading slash, as Django)."""
    return [
        path(stripe_path, stripe_webhook, name="zentitle_stripe_stripe_webhook"),
        path(zentitle_path, zentitle_webhook, name="zentitle_stripe_zentitle_webhook"),
    ]
