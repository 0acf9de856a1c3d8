"""Settings come from the environment, fail early with the variable's name, and mask secrets."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import attrs
import pytest

from zentitle_stripe import Provisioner
from zentitle_stripe.config import Secret, Settings
from zentitle_stripe.exceptions import ConfigurationError, SignatureVerificationError
from zentitle_stripe.signature import compute_signature, verify_stripe_signature
from zentitle_stripe.storage import MemoryStorage
from zentitle_stripe.testing import invoice_paid_event

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


def test_a_blank_setup_names_every_missing_variable_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"ZENTITLE_STRIPE_TOLERANCE": "soon"})
    message = str(info.value)
    assert message.startswith("8 configuration problems")
    for name in [*ENV, "ZENTITLE_STRIPE_TOLERANCE"]:
        assert name in message


def test_an_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    lines = [f"{k}={v}" for k, v in ENV.items() if k != "ZENTITLE_TENANT_ID"]
    env_file.write_text(
        "# written by hand\n"
        + "\n".join(lines)
        + "\nexport ZENTITLE_TENANT_ID='t_file # kept'\n"
        + 'ZENTITLE_CLIENT_ID="from file"  # a comment\n'
        + "ZENTITLE_STRIPE_TOLERANCE=60 # seconds\n",
        encoding="utf-8",
    )
    settings = Settings.from_env({"ZENTITLE_CLIENT_ID": "from env"}, env_file=env_file)
    assert settings.zentitle_tenant_id == "t_file # kept"
    assert settings.zentitle_client_id == "from env"
    assert settings.tolerance == 60
    assert settings.stripe_api_key.reveal() == ENV["STRIPE_API_KEY"]


def test_a_malformed_or_missing_env_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the env file"):
        Settings.from_env({}, env_file=tmp_path / "absent.env")
    bad = tmp_path / "bad.env"
    bad.write_text("STRIPE_API_KEY sk_live_secretvalue\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="line 1 is not KEY=VALUE") as info:
        Settings.from_env({}, env_file=bad)
    assert "secretvalue" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("STRIPE_API_KEY", "pk_test_123", "holds a publishable key"),
        ("STRIPE_API_KEY", "whsec_abc", "holds a webhook signing secret .* STRIPE_WEBHOOK_SECRET"),
        ("STRIPE_API_KEY", "oops", "secret or restricted key"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_ok,sk_test_oops", "entry 2 is an API key"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_ok,wh_oops", "entry 2 does not look like"),
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


NUMERIC_SETTINGS = [
    "ZENTITLE_STRIPE_TOLERANCE",
    "ZENTITLE_STRIPE_LEASE_SECONDS",
    "ZENTITLE_STRIPE_HTTP_TIMEOUT",
    "ZENTITLE_STRIPE_MAX_BODY_BYTES",
    "ZENTITLE_STRIPE_CONFIG_ERROR_STATUS",
]


@pytest.mark.parametrize("name", NUMERIC_SETTINGS)
@pytest.mark.parametrize(
    "value", ["nan", "NaN", "-nan", "inf", "INF", "-inf", "Infinity", "-Infinity", "1e999"]
)
def test_non_finite_numbers_are_refused_by_name(name: str, value: str) -> None:
    """`nan` passes every comparison (`t < now - nan` is false), so it switched limits off."""
    with pytest.raises(ConfigurationError, match=name) as info:
        Settings.from_env({**ENV, name: value})
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("name", NUMERIC_SETTINGS)
@pytest.mark.parametrize(
    "value", ["\u0663\u0660\u0660", "\u00b3\u2070\u2070", "\uff13\uff10\uff10"]
)
def test_numbers_in_other_scripts_digits_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{name} must be .* in ASCII digits"):
        Settings.from_env({**ENV, name: value})


@pytest.mark.parametrize("field", ["tolerance", "lease_seconds", "http_timeout", "max_body_bytes"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1])
def test_settings_built_by_hand_refuse_non_finite_numbers(field: str, value: float) -> None:
    fields: dict[str, Any] = {field: value}
    with pytest.raises(ConfigurationError, match=f"Settings.{field}"):
        attrs.evolve(Settings.from_env(ENV), **fields)


def test_a_nan_tolerance_no_longer_lets_a_2001_signature_through() -> None:
    """Issue 13: with ZENTITLE_STRIPE_TOLERANCE=nan a signature from 2001 was accepted."""
    body = json.dumps(invoice_paid_event([], event_id="evt_2001")).encode()
    in_2001 = 1_000_000_000
    header = f"t={in_2001},v1={compute_signature(in_2001, body, 'whsec_one')}"

    with pytest.raises(ConfigurationError, match="ZENTITLE_STRIPE_TOLERANCE must be a finite"):
        Settings.from_env({**ENV, "ZENTITLE_STRIPE_TOLERANCE": "nan"})
    with pytest.raises(ConfigurationError, match="tolerance must be a finite number"):
        Provisioner(webhook_secrets=["whsec_one"], storage=MemoryStorage(), tolerance=math.nan)

    provisioner = Provisioner(webhook_secrets=["whsec_one"], storage=MemoryStorage())
    response = provisioner.handle_event(body, header)
    assert response.status == 400
    assert "older than the 300 s tolerance" in json.loads(response.body)["detail"]
    provisioner.tolerance = math.nan  # set after construction: still refused, and says why
    response = provisioner.handle_event(body, header)
    assert response.status == 400
    assert "age check is misconfigured" in json.loads(response.body)["detail"]
    assert provisioner.storage.list_events() == []
    with pytest.raises(SignatureVerificationError, match="ZENTITLE_STRIPE_TOLERANCE"):
        verify_stripe_signature(body, header, ["whsec_one"], tolerance=math.inf)


def test_a_nan_body_limit_is_refused_by_hand_too() -> None:
    with pytest.raises(ConfigurationError, match="max_body_bytes must be positive"):
        Provisioner(webhook_secrets=["whsec_one"], storage=MemoryStorage(), max_body_bytes=0)
