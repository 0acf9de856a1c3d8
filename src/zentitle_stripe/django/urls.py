"""`include("zentitle_stripe.django.urls")`: `stripe/webhook` and `zentitle/webhook`."""

from __future__ import annotations

from . import make_urlpatterns

urlpatterns = make_urlpatterns()
