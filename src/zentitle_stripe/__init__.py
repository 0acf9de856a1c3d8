"""zentitle-stripe: Stripe subscription payments in, Zentitle2 licences out, exactly once.

[`Services`][zentitle_stripe.services.Services] opens a deployment's parts once and
[`Provisioner`][zentitle_stripe.Provisioner] answers the webhooks. The core
never imports a web framework; adapters live in `zentitle_stripe.flask`,
`zentitle_stripe.fastapi`, `zentitle_stripe.django` and `zentitle_stripe.server`.
"""

from __future__ import annotations

from ._version import __version__
from .config import Secret, Settings
from .exceptions import (
    ConfigurationError,
    ProvisioningConfigError,
    SignatureVerificationError,
    TransientError,
    ZentitleStripeError,
)
from .policy import LifecyclePolicy
from .provisioner import EventProcessor, Provisioner
from .responses import Outcome, OutcomeKind, WebhookResponse
from .services import Services

__all__ = [
    "ConfigurationError",
    "EventProcessor",
    "LifecyclePolicy",
    "Outcome",
    "OutcomeKind",
    "Provisioner",
    "ProvisioningConfigError",
    "Secret",
    "Services",
    "Settings",
    "SignatureVerificationError",
    "TransientError",
    "WebhookResponse",
    "ZentitleStripeError",
    "__version__",
]
