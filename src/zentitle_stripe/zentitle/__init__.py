"""The Zentitle2 side: the Management API client, its typed models and the webhooks.

[`ZentitleAPI`][zentitle_stripe.zentitle.ZentitleAPI] is what the flows need and
[`ZentitleClient`][zentitle_stripe.zentitle.ZentitleClient] implements it; `webhooks`
verifies and parses Zentitle2's outgoing events and `router` sends them to handlers.
The package exports the public names of its modules.
"""

from __future__ import annotations

from . import api, client, models, router, webhooks
from .api import *  # noqa: F403
from .client import *  # noqa: F403
from .models import *  # noqa: F403
from .router import *  # noqa: F403
from .webhooks import *  # noqa: F403

__all__ = sorted(
    {*api.__all__, *client.__all__, *models.__all__, *router.__all__, *webhooks.__all__}
)
