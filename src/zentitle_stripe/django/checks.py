"""Django system checks: `manage.py check` (and `runserver`, `migrate`) fails on the
configuration that would otherwise make the first webhook a 500.

Errors (`zentitle_stripe.E001`..): E001 the webhook signing secret, E002 the Stripe API
key, E003 the storage URL, E004 a Zentitle2 setting, E005 any other setting, E006
`settings.ZENTITLE_STRIPE` that is not a dict. Warnings: W001 tolerance 0 (signatures of
any age accepted), W002 `memory://` storage, W003 the webhook views in no URLconf, W004
no handler for `entitlement.group.created` on a provisioner already built.
"""

from __future__ import annotations

from typing import Any

from django.core import checks as django_checks
from django.core.checks import CheckMessage, Error, Warning
from django.urls import URLPattern, URLResolver, get_resolver

from ..config import Settings
from ..exceptions import ConfigurationError
from ._settings import configured_environ

__all__ = ["TAG", "check_settings", "check_urls", "register"]

TAG = "zentitle_stripe"
"""`manage.py check --tag zentitle_stripe` runs only these checks."""

_IDS = (
    ("STRIPE_WEBHOOK_SECRET", "E001"),
    ("STRIPE_API_KEY", "E002"),
    ("ZENTITLE_STRIPE_STORAGE", "E003"),
    ("ZENTITLE_API_URL", "E004"),
    ("ZENTITLE_TOKEN_URL", "E004"),
    ("ZENTITLE_TENANT_ID", "E004"),
    ("ZENTITLE_CLIENT_ID", "E004"),
    ("ZENTITLE_CLIENT_SECRET", "E004"),
)


def register() -> None:
    """Register the checks (the app's `ready()` does; call it yourself without the app)."""
    django_checks.register(check_settings, TAG)
    django_checks.register(check_urls, TAG, django_checks.Tags.urls)


def _source(environ: dict[str, str] | None) -> str:
    return "settings.ZENTITLE_STRIPE" if environ is not None else "the environment"


def _error(problem: str, source: str) -> Error:
    code = next((code for name, code in _IDS if problem.startswith(name)), "E005")
    return Error(
        problem,
        hint=f"set it in {source} (keys are the environment variable names); "
        "see the Configuration docs",
        id=f"{TAG}.{code}",
    )


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every problem `Settings.from_env` finds in `settings.ZENTITLE_STRIPE` (or the
    environment without it), one error each, and the risky values as warnings."""
    try:
        environ = configured_environ()
    except ConfigurationError as exc:
        return [Error(str(exc), id=f"{TAG}.E006")]
    source = _source(environ)
    try:
        settings = Settings.from_env(environ)
    except ConfigurationError as exc:
        return [_error(problem, source) for problem in exc.problems]
    found: list[CheckMessage] = []
    if settings.tolerance == 0:
        found.append(
            Warning(
                "ZENTITLE_STRIPE_TOLERANCE is 0: a Stripe signature of any age is accepted, "
                "so a captured webhook can be replayed at any time",
                hint="leave it unset (300 seconds, as Stripe's libraries)",
                id=f"{TAG}.W001",
            )
        )
    if settings.storage_url.lower().startswith("memory:"):
        found.append(
            Warning(
                "ZENTITLE_STRIPE_STORAGE is memory://: events are lost on restart and not "
                "shared between worker processes, so a redelivery can provision twice",
                hint="use sqlite:///path/to/file.db (one machine) or postgresql://...",
                id=f"{TAG}.W002",
            )
        )
    return found


def _views_in(patterns: list[URLPattern | URLResolver]) -> set[str]:
    from .views import stripe_webhook, zentitle_webhook

    found: set[str] = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found |= _views_in(pattern.url_patterns)
        elif pattern.callback is stripe_webhook:
            found.add("stripe")
        elif pattern.callback is zentitle_webhook:
            found.add("zentitle")
    return found


def check_urls(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The Stripe webhook view is routed, and a provisioner built while the URLconf
    loaded (where handlers are registered) has an activation handler."""
    from . import views

    found: list[CheckMessage] = []
    if "stripe" not in _views_in(get_resolver().url_patterns):
        found.append(
            Warning(
                "the Stripe webhook view is in no URLconf, so Stripe's deliveries get 404",
                hint='add path("billing/", include("zentitle_stripe.django.urls")) to urls.py',
                id=f"{TAG}.W003",
            )
        )
    provisioner = views.built_provisioner()
    if provisioner is not None and not provisioner.zentitle_router.handlers_for(
        "entitlement.group.created"
    ):
        found.append(
            Warning(
                "no on_zentitle handler for entitlement.group.created: the activation codes "
                "of new licences reach no one",
                hint="register one with @get_provisioner().on_zentitle(...) in urls.py or an "
                "AppConfig.ready()",
                id=f"{TAG}.W004",
            )
        )
    return found
