"""`connect`: create or update the Stripe webhook endpoint, and store its secret."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ..policy import DEFAULT_POLICY

if TYPE_CHECKING:
    from ..stripe_api import StripeOpsAPI, WebhookEndpoint

DEFAULT_WEBHOOK_API_VERSION = "2026-10-28.endive"
"""Pinned on endpoints `connect` creates, so payload shapes do not change under us."""


@attrs.frozen
class ConnectResult:
    """What `connect` did: `created`, `updated` or `reused` the endpoint.

    `endpoint.secret` is set only when `created`: Stripe never shows it again.
    """

    action: str
    endpoint: WebhookEndpoint
    notes: tuple[str, ...] = ()

    @property
    def secret(self) -> str | None:
        return self.endpoint.secret

    def to_json(self, *, include_secret: bool = True) -> dict[str, Any]:
        return {
            "action": self.action,
            "endpoint_id": self.endpoint.id,
            "url": self.endpoint.url,
            "enabled_events": list(self.endpoint.enabled_events),
            "status": self.endpoint.status,
            "api_version": self.endpoint.api_version,
            "secret": self.secret if include_secret else None,
            "notes": list(self.notes),
        }


ROLL_HINT = (
    "Stripe shows an endpoint's signing secret only when it is created. To get a new one, "
    "open Dashboard > Developers > Webhooks > the endpoint > Roll secret, then put the new "
    "secret first in STRIPE_WEBHOOK_SECRET (comma-separated with the old one until it expires)"
)


def connect_webhook(
    stripe: StripeOpsAPI,
    url: str,
    *,
    api_version: str = DEFAULT_WEBHOOK_API_VERSION,
    events: Sequence[str] = DEFAULT_POLICY.events(),
) -> ConnectResult:
    """Create the webhook endpoint for `url`, or bring an existing one up to date.

    `events` is what the lifecycle policy acts on
    ([`LifecyclePolicy.events`][zentitle_stripe.policy.LifecyclePolicy.events]); the
    endpoint is subscribed to exactly those. Idempotent: an endpoint with this exact URL
    is reused; its events are set to `events` (the URL is this library's, which answers
    any other type `ignored`, so an extra one only costs deliveries) and a disabled one
    is enabled. Stripe cannot change an endpoint's API version, so a different one is
    only reported.
    """
    if not url.startswith("https://"):
        raise ValueError(f"the webhook URL must be https:// (Stripe requires it), got {url!r}")
    matches = [e for e in stripe.list_webhook_endpoints() if e.url == url]
    if not matches:
        created = stripe.create_webhook_endpoint(url, list(events), api_version=api_version)
        return ConnectResult("created", created)
    notes = []
    if len(matches) > 1:
        notes.append(
            f"{len(matches)} endpoints have this URL ({', '.join(e.id for e in matches)}), so "
            "every event arrives more than once: delete the extra ones in the Dashboard"
        )
    endpoint = matches[0]
    enabled = list(endpoint.enabled_events)
    missing = [event for event in events if event not in enabled]
    extra = [event for event in enabled if event not in events]
    changed = bool(missing or extra)
    disabled = endpoint.status != "enabled"
    if changed or disabled:
        endpoint = stripe.update_webhook_endpoint(
            endpoint.id,
            enabled_events=list(events) if changed else None,
            disabled=False if disabled else None,
        )
        if missing:
            notes.append(f"added {', '.join(missing)} to the endpoint's events")
        if extra:
            notes.append(
                f"removed {', '.join(extra)} from the endpoint's events: the lifecycle "
                "policy does not act on them"
            )
        if disabled:
            notes.append("enabled the endpoint, which was disabled")
    if endpoint.api_version != api_version:
        notes.append(
            f"the endpoint pins API version {endpoint.api_version or 'account default'}, not "
            f"{api_version}; Stripe cannot change that, so create a new endpoint if it matters"
        )
    notes.append(ROLL_HINT)
    return ConnectResult("updated" if changed or disabled else "reused", endpoint, tuple(notes))


def write_env_secret(path: str | os.PathLike[str], secret: str) -> None:
    """Set `STRIPE_WEBHOOK_SECRET=` in an env file, keeping its other lines, mode 0600.

    Written to a private temporary file and renamed over the target, so the secret is never
    readable by others, not even for a moment.
    """
    target = Path(path)
    line = f"STRIPE_WEBHOOK_SECRET={secret}"
    lines = target.read_text().splitlines() if target.exists() else []
    pattern = re.compile(r"^\s*(export\s+)?STRIPE_WEBHOOK_SECRET\s*=")
    kept = [existing for existing in lines if not pattern.match(existing)]
    content = "\n".join([*kept, line]) + "\n"
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(content)
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
