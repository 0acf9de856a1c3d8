"""zentitle-stripe: Stripe subscription payments in, Zentitle2 licences out, exactly once.

The core never imports a web framework; adapters live in ``zentitle_stripe.flask``,
``zentitle_stripe.fastapi`` and ``zentitle_stripe.django``.
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
from .provisioner import EventProcessor, Provisioner
from .responses import Outcome, OutcomeKind, WebhookResponse

__all__ = [
    "ConfigurationError",
    "EventProcessor",
    "Outcome",
    "OutcomeKind",
    "Provisioner",
    "ProvisioningConfigError",
    "Secret",
    "Settings",
    "SignatureVerificationError",
    "TransientError",
    "WebhookResponse",
    "ZentitleStripeError",
    "__version__",
]
