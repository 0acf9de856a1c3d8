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

from typing import Any

from .exceptions import MissingExtraError

try:
    from flask import Blueprint, Flask, Response, request
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing flask
    raise MissingExtraError("zentitle_stripe.flask", "flask") from exc

from ._body import read_bounded
from .provisioner import Provisioner
from .responses import WebhookResponse

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
    """A Blueprint with `POST stripe_path` (Stripe) and `POST zentitle_path` (Zentitle2)."""
    blueprint = Blueprint(name, __name__)

    def stripe_webhook() -> Response:
        body = read_bounded(request.stream.read, provisioner.max_body_bytes)
        return _render(provisioner.handle_event(body, request.headers.get("Stripe-Signature")))

    def zentitle_webhook() -> Response:
        body = read_bounded(request.stream.read, provisioner.max_body_bytes)
        signature = request.headers.get("N-Signature")
        return _render(provisioner.handle_zentitle_event(body, signature))

    blueprint.add_url_rule(stripe_path, "stripe_webhook", stripe_webhook, methods=["POST"])
    blueprint.add_url_rule(zentitle_path, "zentitle_webhook", zentitle_webhook, methods=["POST"])
    return blueprint


def init_app(app: Flask, provisioner: Provisioner, **kw: Any) -> Blueprint:
    """Register [`make_blueprint`][zentitle_stripe.flask.make_blueprint] (`kw` goes to it)
    on `app`; returns the Blueprint."""
    blueprint = make_blueprint(provisioner, **kw)
    app.register_blueprint(blueprint)
    return blueprint
