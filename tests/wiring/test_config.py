"""Settings come from the environment, fail early with the variable's name, and mask secrets."""

from __future__ import annotations

import pytest

from zentitle_stripe.config import Secret, Settings
from zentitle_stripe.exceptions import ConfigurationError

ENV = {
    "STRIPE_API_KEY": "sk_test_abc123secret",
    "STRIPE_WEBHOOK_SECRET": "whsec_one, whsec_two",
    "ZENTITLE_API_URL": "https://acme.api.nalpeiron.io/",
    "ZENTITLE_TOKEN_URL": "https://acme.keycloak.nalpeiron.io/realms/acme/protocol/openid-connect/token",
    "ZENTITLE_TENANT_ID": "t_acme",
    "ZENTITLE_CLIENT_ID": "provisioner",
    "ZENTITLE_CLIENT_SECRET": "zentitle-client-secret-value",
}


def test_reads_every_setting_with_defaults() -> None:
    settings = Settings.from_env(ENV)
    assert settings.stripe_api_key.reveal() == "sk_test_abc123secret"
    assert [s.reveal() for s in settings.webhook_secrets] == ["whsec_one", "whsec_two"]
    assert settings.zentitle_api_url == "https://acme.api.nalpeiron.io"
    assert settings.zentitle_tenant_id == "t_acme"
    assert settings.storage_url == "sqlite:///zentitle_stripe.db"
    assert settings.stripe_api_base is None
    assert settings.tolerance == 300
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.config_error_status == 422
    assert settings.seat_policy == "multiply"
    assert settings.lookup_key_fallback is False
    assert settings.zentitle_webhook_public_key is None


def test_optional_settings() -> None:
    settings = Settings.from_env(
        {
            **ENV,
            "STRIPE_API_BASE": "http://127.0.0.1:12111",
            "ZENTITLE_STRIPE_STORAGE": "postgresql://app:pw@db/licences",
            "ZENTITLE_STRIPE_TOLERANCE": "60",
            "ZENTITLE_STRIPE_MAX_BODY_BYTES": "2048",
            "ZENTITLE_STRIPE_CONFIG_ERROR_STATUS": "200",
            "ZENTITLE_STRIPE_LOOKUP_KEY_FALLBACK": "yes",
            "ZENTITLE_STRIPE_SEAT_POLICY": "offering",
            "ZENTITLE_WEBHOOK_PUBLIC_KEY": "modulus",
        }
    )
    assert settings.stripe_api_base == "http://127.0.0.1:12111"
    assert settings.storage_url == "postgresql://app:pw@db/licences"
    assert settings.tolerance == 60
    assert settings.max_body_bytes == 2048
    assert settings.config_error_status == 200
    assert settings.lookup_key_fallback is True
    assert settings.seat_policy == "offering"
    assert settings.zentitle_webhook_public_key == "modulus"


def test_repr_masks_every_secret() -> None:
    settings = Settings.from_env(
        {**ENV, "ZENTITLE_STRIPE_STORAGE": "postgresql://app:dbpassword@db/licences"}
    )
    text = repr(settings) + str(settings)
    for secret in (
        "abc123secret",
        "whsec_one",
        "whsec_two",
        "zentitle-client-secret",
        "dbpassword",
    ):
        assert secret not in text
    assert "********" in text


@pytest.mark.parametrize("missing", sorted(ENV))
def test_each_missing_required_setting_is_named(missing: str) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(ConfigurationError, match=missing):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("STRIPE_API_KEY", "pk_test_123", "not a publishable key"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_ok,sk_test_oops", "entry 2 does not look like"),
        ("ZENTITLE_API_URL", "acme.api.nalpeiron.io", "must be an http"),
        ("STRIPE_API_BASE", "localhost:1234", "STRIPE_API_BASE must be an http"),
        ("ZENTITLE_STRIPE_TOLERANCE", "five", "must be a number"),
        ("ZENTITLE_STRIPE_TOLERANCE", "-1", "must not be negative"),
        ("ZENTITLE_STRIPE_LEASE_SECONDS", "0", "must be positive"),
        ("ZENTITLE_STRIPE_HTTP_TIMEOUT", "0", "must be positive"),
        ("ZENTITLE_STRIPE_MAX_BODY_BYTES", "1.5", "whole number"),
        ("ZENTITLE_STRIPE_MAX_BODY_BYTES", "0", "must be positive"),
        ("ZENTITLE_STRIPE_CONFIG_ERROR_STATUS", "500", "422 .default. or 200"),
        ("ZENTITLE_STRIPE_LOOKUP_KEY_FALLBACK", "maybe", "true or false"),
        ("ZENTITLE_STRIPE_SEAT_POLICY", "double", "multiply"),
    ],
)
def test_malformed_settings_are_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        Settings.from_env({**ENV, name: value})
    assert name in str(info.value)
    assert "abc123secret" not in str(info.value)


def test_secret_hides_itself_and_compares_by_value() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) + str(secret) + f"{secret}"
    assert secret == Secret("hunter2")
    assert secret != Secret("hunter3")
    assert secret.reveal() == "hunter2"
