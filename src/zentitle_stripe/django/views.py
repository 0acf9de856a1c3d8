"""The Django views; see [`zentitle_stripe.django`][zentitle_stripe.django]."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, UnreadablePostError
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .._body import UploadAborted, read_bounded
from ..provisioner import Provisioner
from ..responses import WebhookResponse
from ..services import Services
from ._settings import configured_environ

__all__ = [
    "built_provisioner",
    "get_provisioner",
    "make_urlpatterns",
    "set_provisioner",
    "stripe_webhook",
    "zentitle_webhook",
]

View = Callable[[HttpRequest], HttpResponse]
Handle = Callable[[bytes, "str | None"], WebhookResponse]

_lock = threading.Lock()
_provisioner: Provisioner | None = None
_built: Services | None = None  # what get_provisioner() built, so the adapter closes it


def set_provisioner(provisioner: Provisioner | Services | None) -> None:
    """Use `provisioner` (or the provisioner of a `Services`) from now on; `None`
    builds it from settings again on next use.

    Services the adapter built itself are closed when replaced; what you pass in stays
    yours to close.
    """
    global _provisioner, _built
    with _lock:
        if _built is not None:
            _built.close()
            _built = None
        _provisioner = provisioner.provisioner if isinstance(provisioner, Services) else provisioner


def get_provisioner() -> Provisioner:
    """The provisioner, built once (thread-safe) from `settings.ZENTITLE_STRIPE` or the
    environment; a missing setting raises `ConfigurationError` naming it.

    Its [`Services`][zentitle_stripe.services.Services] are `get_provisioner().services`.
    """
    global _provisioner, _built
    with _lock:
        if _provisioner is None:
            _built = Services.from_env(environ=configured_environ())
            _provisioner = _built.provisioner
        return _provisioner


def built_provisioner() -> Provisioner | None:
    """The provisioner if one was built or set already (the system checks look at its
    handlers without building one)."""
    return _provisioner


def _render(response: WebhookResponse) -> HttpResponse:
    return HttpResponse(response.body, status=response.status, headers=dict(response.headers))


def _deliver(
    request: HttpRequest, provisioner: Provisioner, handle: Handle, header: str, source: str
) -> HttpResponse:
    try:
        # Django raises UnreadablePostError when the client goes away mid-body.
        body = read_bounded(request.read, provisioner.max_body_bytes, aborts=(UnreadablePostError,))
    except UploadAborted as aborted:
        quiet = _render(aborted.response(source))
        # Django logs every 4xx as a warning unless told it was logged: one INFO line is all.
        quiet._has_been_logged = True
        return quiet
    return _render(handle(body, request.headers.get(header)))


def _stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Stripe's webhook: raw body and `Stripe-Signature` go to `handle_event`."""
    provisioner = get_provisioner()
    return _deliver(request, provisioner, provisioner.handle_event, "Stripe-Signature", "stripe")


def _zentitle_webhook(request: HttpRequest) -> HttpResponse:
    """Zentitle2's webhook: raw body and `N-Signature` go to `handle_zentitle_event`."""
    provisioner = get_provisioner()
    handle = provisioner.handle_zentitle_event
    return _deliver(request, provisioner, handle, "N-Signature", "zentitle")


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
