"""The Django app: `INSTALLED_APPS = [..., "zentitle_stripe.django"]` registers the
system checks (`manage.py check`) and the `manage.py zentitle_stripe` command."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["ZentitleStripeConfig"]


class ZentitleStripeConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    """No models, so no migrations: the app only adds checks and a management command."""

    name = "zentitle_stripe.django"
    label = "zentitle_stripe"
    verbose_name = "Zentitle2 for Stripe"
    default = True

    def ready(self) -> None:
        from . import checks

        checks.register()
