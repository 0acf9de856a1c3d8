"""The wired parts of one deployment, built once from settings and closed once.

[`Services`][zentitle_stripe.services.Services] opens the storage, the Stripe gateway and
the Zentitle2 client from [`Settings`][zentitle_stripe.config.Settings] and wires the
[`Provisioner`][zentitle_stripe.Provisioner] onto them. Whatever needs more than the
engine (the server, the CLI, operations, the demo, the Django adapter) takes a
`Services`, so nothing reaches into the provisioner for its parts and exactly one object
closes them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from typing_extensions import override

from ._closing import Closer, ClosingContext
from .config import Settings
from .provisioner import Provisioner
from .storage import Storage, open_storage

if TYPE_CHECKING:
    from .stripe_api import StripeGateway
    from .zentitle import ZentitleClient

__all__ = ["Services"]


class Services(ClosingContext):
    """Storage, Stripe gateway, Zentitle2 client and the provisioner wired onto them.

    Build it with [`from_env`][zentitle_stripe.services.Services.from_env] or
    [`from_settings`][zentitle_stripe.services.Services.from_settings], or from parts of
    your own (tests, custom storage). Close it with
    [`close`][zentitle_stripe.services.Services.close] or a `with` block:

    ```python
    with Services.from_env() as services:
        response = services.provisioner.handle_event(body, signature)
    ```
    """

    def __init__(
        self,
        settings: Settings,
        *,
        storage: Storage,
        stripe: StripeGateway,
        zentitle: ZentitleClient,
    ) -> None:
        """Wire the provisioner onto the parts; from now on this object owns them."""
        self.settings = settings
        self.storage = storage
        self.stripe = stripe
        self.zentitle = zentitle
        self.provisioner = Provisioner(
            webhook_secrets=settings.webhook_secrets,
            storage=storage,
            zentitle=zentitle,
            stripe=stripe,
            zentitle_webhook_key=settings.zentitle_webhook_public_key,
            tolerance=settings.tolerance,
            max_body_bytes=settings.max_body_bytes,
            lease_seconds=settings.lease_seconds,
            config_error_status=settings.config_error_status,
            lookup_key_fallback=settings.lookup_key_fallback,
            seat_policy=settings.seat_policy,
            create_window=settings.create_window,
            processing=settings.processing,
            policy=settings.lifecycle,
        )
        self.provisioner._services = self  # its close() and .settings defer to us
        self._closer = Closer(zentitle, stripe, storage)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | os.PathLike[str] | None = None,
    ) -> Services:
        """Build from environment variables (and `env_file`, the environment winning).

        See [`Settings.from_env`][zentitle_stripe.config.Settings.from_env] for the
        variables; a missing or malformed one raises
        [`ConfigurationError`][zentitle_stripe.exceptions.ConfigurationError].
        """
        return cls.from_settings(Settings.from_env(environ, env_file=env_file))

    @classmethod
    def from_settings(cls, settings: Settings, *, storage: Storage | None = None) -> Services:
        """Open every part named by `settings` (`storage` instead of the one it names, if
        given); if one cannot be built, close the others."""
        from .stripe_api import StripeGateway
        from .zentitle import ZentitleClient

        storage = open_storage(settings.storage_url) if storage is None else storage
        with contextlib.ExitStack() as undo:
            undo.callback(storage.close)
            zentitle = ZentitleClient(
                settings.zentitle_api_url,
                settings.zentitle_tenant_id,
                settings.zentitle_client_id,
                settings.zentitle_client_secret.reveal(),
                settings.zentitle_token_url,
                api_version=settings.zentitle_api_version,
                timeout=settings.http_timeout,
            )
            undo.callback(zentitle.close)
            stripe = StripeGateway(
                settings.stripe_api_key.reveal(),
                api_base=settings.stripe_api_base,
                timeout=settings.http_timeout,
            )
            undo.callback(stripe.close)
            services = cls(settings, storage=storage, stripe=stripe, zentitle=zentitle)
            undo.pop_all()
        return services

    @property
    def closed(self) -> bool:
        return self._closer.closed

    @override
    def close(self) -> None:
        """Close the Zentitle2 client, the Stripe gateway and the storage, once each.

        Safe to call again (later calls do nothing) and from several threads. Every part
        is closed even when one fails; that failure is raised afterwards.
        """
        self._closer.close()

    def __repr__(self) -> str:
        return (
            f"Services(storage={self.storage!r}, stripe={type(self.stripe).__name__}, "
            f"zentitle={type(self.zentitle).__name__}, closed={self.closed})"
        )
