"""`include("zentitle_stripe.django.admin_urls")`: the read-only events page at `events/`."""

from __future__ import annotations

from django.urls import path

from .admin_views import events_view

urlpatterns = [path("events/", events_view, name="zentitle_stripe_events")]
