"""What only the Django adapter has: a provisioner built lazily, once, from
`settings.ZENTITLE_STRIPE`.

The scenarios every adapter shares (on CSRF-protected Django) are in `test_adapters.py`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.support.apps import configure_django, django_urls

pytest.importorskip("django")
configure_django()

from django.test import Client, override_settings  # noqa: E402

from zentitle_stripe.django import get_provisioner, set_provisioner  # noqa: E402


@pytest.fixture(autouse=True)
def _shipped_urls() -> Iterator[None]:
    with django_urls("zentitle_stripe.django.urls"):
        yield


def test_provisioner_is_built_once_from_the_settings_dict() -> None:
    config = {
        "STRIPE_API_KEY": "sk_test_django",
        "STRIPE_WEBHOOK_SECRET": "whsec_django",
        "ZENTITLE_API_URL": "https://api.zentitle.invalid",
        "ZENTITLE_TOKEN_URL": "https://auth.zentitle.invalid/token",
        "ZENTITLE_TENANT_ID": "t_1",
        "ZENTITLE_CLIENT_ID": "c_1",
        "ZENTITLE_CLIENT_SECRET": "s_1",
        "ZENTITLE_STRIPE_STORAGE": "memory://",
        "ZENTITLE_STRIPE_MAX_BODY_BYTES": 4096,
    }
    set_provisioner(None)
    built: list[object] = []
    with override_settings(ZENTITLE_STRIPE=config):
        threads = [
            threading.Thread(target=lambda: built.append(get_provisioner())) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert len(built) == 8
        assert all(p is built[0] for p in built)
        assert get_provisioner().max_body_bytes == 4096
        response = Client().post("/stripe/webhook", b"{}", content_type="application/json")
        assert response.status_code == 400
