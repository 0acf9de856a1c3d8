"""Django adapter: CSRF-exempt, POST-only views and an include-able `urls` module.

```python
# settings.py
ZENTITLE_STRIPE = {"STRIPE_WEBHOOK_SECRET": "whsec_...", ...}  # or the environment

# urls.py
urlpatterns = [path("billing/", include("zentitle_stripe.django.urls"))]
```

The provisioner is built on first use, through
[`Services`][zentitle_stripe.services.Services], from `settings.ZENTITLE_STRIPE` (keys
are the environment variable names) or, without it, from the environment;
[`set_provisioner`][zentitle_stripe.django.set_provisioner] wires one by hand (tests,
custom set-ups).
"""

from __future__ import annotations

from ..exceptions import MissingExtraError

try:
    import django  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing django
    raise MissingExtraError("zentitle_stripe.django", "django") from exc

from . import views
from .views import *  # noqa: F403  (the public names are the views')

__all__ = views.__all__
