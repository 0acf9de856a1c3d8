"""Flask adapter: a Blueprint that hands the raw body and signature header to the core.

It makes no decision of its own: the
[`WebhookResponse`][zentitle_stripe.responses.WebhookResponse] the core returns is sent
back as it is (status, JSON body, `Retry-After`):

```python
app = Flask(__name__)
init_app(app, Provisioner.from_env())
```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .exceptions import MissingExtraError

try:
    from flask import Blueprint, Flask, Response, request
    from werkzeug.exceptions import ClientDisconnected
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing flask
    raise MissingExtraError("zentitle_stripe.flask", "flask") from exc

from ._body import UploadAborted, read_bounded
from .provisioner import Provisioner
from .responses import WebhookResponse

Handle = Callable[[bytes, "str | None"], WebhookResponse]

# How Werkzeug says the client went away mid-body (OSError: from a raw input stream).
_ABORTS = (ClientDisconnected, OSError)

__all__ = ["init_app", "make_blueprint"]


def _render(response: WebhookResponse) -> Response:
    return Response(response.body, status=response.status, headers=dict(response.headers))


def make_blueprint(
    provisioner: Provisioner,
    *,
    stripe_path: str = "/stripe/webhook",
    zentitle_path: str = "/zentitle/webhook",
    name: str = "zentitle_stripe",
) -> Blueprint:
    """A Blueprint with `POST stripe_path` (Stripe) and `POST zentitle_path` (Zentitle2).

    A client that disconnects before its body arrived is logged as one INFO line.
    """
    blueprint = Blueprint(name, __name__)
    limit = provisioner.max_body_bytes

    def deliver(handle: Handle, header: str, source: str) -> Response:
        try:
            body = read_bounded(request.stream.read, limit, aborts=_ABORTS)
        except UploadAborted as aborted:
            return _render(aborted.response(source))
        return _render(handle(body, request.headers.get(header)))

    def stripe_webhook() -> Response:
        return deliver(provisioner.handle_event, "Stripe-Signature", "stripe")

    def zentitle_webhook() -> Response:
        return deliver(provisioner.handle_zentitle_event, "N-Signature", "zentitle")

    blueprint.add_url_rule(stripe_path, "stripe_webhook", stripe_webhook, methods=["POST"])
    blueprint.add_url_rule(zentitle_path, "zentitle_webhook", zentitle_webhook, methods=["POST"])
    return blueprint


def init_app(app: Flask, provisioner: Provisioner, **kw: Any) -> Blueprint:
    """Register [`make_blueprint`][zentitle_stripe.flask.make_blueprint] (`kw` goes to it)
    on `app`; returns the Blueprint."""
    blueprint = make_blueprint(provisioner, **kw)
    app.register_blueprint(blueprint)
    return blueprint
