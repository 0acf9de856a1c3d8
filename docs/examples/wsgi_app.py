"""Without a framework: a plain WSGI app (``gunicorn wsgi_app:app``).

The core takes the raw body and the signature header and returns a ``WebhookResponse``;
the app only copies its status, headers and body out. No decision is made here.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING

from zentitle_stripe import Provisioner, WebhookResponse

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def make_app(provisioner: Provisioner) -> WSGIApplication:
    """``POST /stripe/webhook`` and ``POST /zentitle/webhook``."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        if method != "POST" or path not in ("/stripe/webhook", "/zentitle/webhook"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        # The exact bytes received (never re-serialised JSON), at most one byte over the
        # limit: enough for the core to answer 413.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(min(length, provisioner.max_body_bytes + 1))
        response: WebhookResponse
        if path == "/stripe/webhook":
            response = provisioner.handle_event(body, environ.get("HTTP_STRIPE_SIGNATURE"))
        else:
            response = provisioner.handle_zentitle_event(body, environ.get("HTTP_N_SIGNATURE"))
        reason = HTTPStatus(response.status).phrase
        start_response(f"{response.status} {reason}", list(response.headers.items()))
        return [response.body]

    return app


provisioner = Provisioner.from_env()  # STRIPE_*, ZENTITLE_* and ZENTITLE_STRIPE_STORAGE
app = make_app(provisioner)
