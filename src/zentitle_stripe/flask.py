"""Flask adapter: a Blueprint that hands the raw body and signature header to the core.

It makes no decision of its own: the :class:`~zentitle_stripe.responses.WebhookResponse`
the core returns is sent back as it is (status, JSON body, ``Retry-After``)::

    app = Flask(__name__)
    init_app(app, Provisioner.from_env())
"""

from __future__ import annotations

from typing import IO, Any

from .exceptions import MissingExtraError

try:
    from flask import Blueprint, Flask, Response, request
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing flask
    raise MissingExtraError("zentitle_stripe.flask", "flask") from exc

from .provisioner import Provisioner
from .responses import WebhookResponse

__all__ = ["init_app", "make_blueprint"]


def _read_body(limit: int) -> bytes:
    """The raw body as received, but never more than ``limit + 1`` bytes: enough for the
    core to answer 413, whatever the sender declared or streams."""
    stream: IO[bytes] = request.stream
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _render(response: WebhookResponse) -> Response:
    return Response(response.body, status=response.status, headers=dict(response.headers))


def make_blueprint(
    provisioner: Provisioner,
    *,
    stripe_path: str = "/stripe/webhook",
    zentitle_path: str = "/zentitle/webhook",
    name: str = "zentitle_stripe",
) -> Blueprint:
    """A Blueprint with ``POST stripe_path`` (Stripe) and ``POST zentitle_path`` (Zentitle2)."""
    blueprint = Blueprint(name, __name__)

    def stripe_webhook() -> Response:
        body = _read_body(provisioner.max_body_bytes)
        return _render(provisioner.handle_event(body, request.headers.get("Stripe-Signature")))

    def zentitle_webhook() -> Response:
        body = _read_body(provisioner.max_body_bytes)
        signature = request.headers.get("N-Signature")
        return _render(provisioner.handle_zentitle_event(body, signature))

    blueprint.add_url_rule(stripe_path, "stripe_webhook", stripe_webhook, methods=["POST"])
    blueprint.add_url_rule(zentitle_path, "zentitle_webhook", zentitle_webhook, methods=["POST"])
    return blueprint


def init_app(app: Flask, provisioner: Provisioner, **kw: Any) -> Blueprint:
    """Register :func:`make_blueprint` (``kw`` goes to it) on ``app``; returns the Blueprint."""
    blueprint = make_blueprint(provisioner, **kw)
    app.register_blueprint(blueprint)
    return blueprint
