"""The public names of each public module are pinned, so a refactor cannot drop one.

A name that moves keeps an alias where it was; a name added or removed here is a change to
the documented API and belongs in the CHANGELOG. The framework adapters import their
framework when imported, and without it fail with an error that names the extra.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys

import pytest

from zentitle_stripe.exceptions import MissingExtraError

PUBLIC_API: dict[str, set[str]] = {
    "zentitle_stripe": {
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
    },
    "zentitle_stripe.config": {
        "DEFAULT_MAX_BODY_BYTES",
        "Processing",
        "SeatPolicy",
        "Secret",
        "Settings",
    },
    "zentitle_stripe.exceptions": {
        "ConfigurationError",
        "EventInProgress",
        "EventNotFound",
        "InvalidPayloadError",
        "LeaseLost",
        "MissingExtraError",
        "PayloadTooLargeError",
        "ProcessingError",
        "ProvisioningConfigError",
        "RemoteAPIError",
        "SignatureVerificationError",
        "StateConflict",
        "StorageError",
        "StripeAPIError",
        "TransientError",
        "WebhookRejected",
        "ZentitleAPIError",
        "ZentitleStripeError",
    },
    "zentitle_stripe.responses": {
        "Failure",
        "Outcome",
        "OutcomeKind",
        "WebhookResponse",
        "classify",
        "is_transient",
        "retry_after_for",
        "status_for",
    },
    "zentitle_stripe.policy": {
        "CORE_EVENTS",
        "DEFAULT_POLICY",
        "ChargeAction",
        "LifecyclePolicy",
        "PauseAction",
        "TrialPolicy",
    },
    "zentitle_stripe.provisioner": {"EventProcessor", "Provisioner", "ZentitleHandler"},
    "zentitle_stripe.services": {"Services"},
    "zentitle_stripe.ledger": {"Ledger", "Work", "log_answer", "new_owner"},
    "zentitle_stripe.fencing": {
        "BUDGET_SHARE",
        "Fence",
        "OutOfTime",
        "budgeted_timeout",
        "check_fence",
        "current_fence",
        "read_within",
    },
    "zentitle_stripe.catalogue": {
        "CODES_METADATA_KEY",
        "CUSTOMER_METADATA_KEY",
        "LIVE_ENTITLEMENT_STATUSES",
        "MISSING_EVENT_CONSEQUENCES",
        "REQUIRED_EVENTS",
        "SKU_METADATA_KEY",
        "SWITCHED_OFF_ENTITLEMENT_STATUSES",
        "is_live",
        "missing_events",
        "near_miss_sku",
        "product_sku",
        "resolve_sku",
    },
    "zentitle_stripe.storage": {
        "DEFAULT_STORAGE_URL",
        "QueueStats",
        "QueueStorage",
        "Claim",
        "ClaimResult",
        "EventAttempt",
        "EventRecord",
        "EventStatus",
        "HookRun",
        "HookStatus",
        "HookStorage",
        "MemoryStorage",
        "NewEvent",
        "SQLiteStorage",
        "Storage",
        "StoredOutcome",
        "SubscriptionState",
        "check_state_write",
        "check_storage_url",
        "decide_claim",
        "open_storage",
        "redact_url",
        "stuck_events",
    },
    "zentitle_stripe.flows": {
        "CODES_METADATA_KEY",
        "CUSTOMER_METADATA_KEY",
        "SKU_METADATA_KEY",
        "ActivationDetails",
        "Provisioning",
        "activation_details",
    },
    "zentitle_stripe.events": {
        "Invoice",
        "InvoiceLine",
        "StripeEvent",
        "Subscription",
        "SubscriptionItem",
        "parse_event",
        "parse_invoice",
        "parse_invoice_line",
        "parse_subscription",
    },
    "zentitle_stripe.signature": {
        "DEFAULT_TOLERANCE",
        "compute_signature",
        "verify_stripe_signature",
    },
    "zentitle_stripe.stripe_api": {
        "Account",
        "Customer",
        "KeyMode",
        "Price",
        "Product",
        "StripeAPI",
        "StripeGateway",
        "StripeOpsAPI",
        "WebhookEndpoint",
        "key_mode",
    },
    "zentitle_stripe.zentitle": {
        "ANY",
        "Contact",
        "Customer",
        "DEFAULT_API_VERSION",
        "EVENT_TYPES",
        "Entitlement",
        "EntitlementCreated",
        "EntitlementGroup",
        "EntitlementGroupCreated",
        "EntitlementRenewed",
        "EntitlementUpdated",
        "Interval",
        "Offering",
        "Plan",
        "Router",
        "ZentitleAPI",
        "ZentitleClient",
        "ZentitleEvent",
        "ZentitleHandler",
        "ZentitleWebhookKey",
        "format_datetime",
        "parse_datetime",
        "parse_zentitle_event",
    },
    "zentitle_stripe.zentitle_webhooks": {
        "EVENT_TYPES",
        "EntitlementCreated",
        "EntitlementGroupCreated",
        "EntitlementRenewed",
        "EntitlementUpdated",
        "ZentitleEvent",
        "ZentitleWebhookKey",
        "parse_zentitle_event",
    },
    "zentitle_stripe.zentitle_router": {"ANY", "Router", "ZentitleHandler"},
    "zentitle_stripe.stripe": {
        "Account",
        "Customer",
        "DEFAULT_TOLERANCE",
        "Invoice",
        "InvoiceLine",
        "KeyMode",
        "Price",
        "Product",
        "StripeAPI",
        "StripeEvent",
        "StripeGateway",
        "StripeOpsAPI",
        "Subscription",
        "SubscriptionItem",
        "WebhookEndpoint",
        "compute_signature",
        "key_mode",
        "parse_event",
        "parse_invoice",
        "parse_invoice_line",
        "parse_subscription",
        "verify_stripe_signature",
    },
    "zentitle_stripe.zentitle.webhooks": {
        "EVENT_TYPES",
        "EntitlementCreated",
        "EntitlementGroupCreated",
        "EntitlementRenewed",
        "EntitlementUpdated",
        "ZentitleEvent",
        "ZentitleWebhookKey",
        "parse_zentitle_event",
    },
    "zentitle_stripe.zentitle.router": {
        "ANY",
        "Router",
        "ZentitleHandler",
    },
    "zentitle_stripe.ops": {
        "DEFAULT_WEBHOOK_API_VERSION",
        "EVENTS_WINDOW_SECONDS",
        "REQUIRED_EVENTS",
        "Check",
        "CheckStatus",
        "ConnectResult",
        "DoctorReport",
        "Drift",
        "MigrateResult",
        "Progress",
        "ReconcileReport",
        "ReconciledEvent",
        "ReplayResult",
        "check_catalogue",
        "check_storage",
        "check_stripe_key",
        "check_webhook_endpoint",
        "check_webhook_secrets",
        "check_zentitle",
        "connect_webhook",
        "event_to_json",
        "failed_events",
        "find_drift",
        "migrate_storage",
        "parse_since",
        "process_trusted_event",
        "reconcile",
        "replay_events",
        "run_doctor",
        "write_env_secret",
    },
    "zentitle_stripe.cli": {"main"},
    "zentitle_stripe.worker": {"ZENTITLE_THROTTLE", "Worker"},
    "zentitle_stripe.demo": {"DemoStory", "StepResult", "run_demo"},
    "zentitle_stripe.testing": {
        "DEFAULT_RANDOM_FAULTS",
        "FAULT_KINDS",
        "NEW_API_VERSION",
        "OLD_API_VERSION",
        "Contract",
        "ContractViolation",
        "EmulatedWorld",
        "FakeClock",
        "FakeService",
        "FaultKind",
        "LineSpec",
        "OutgoingWebhook",
        "RecordedRequest",
        "StorageContract",
        "StripeEmulator",
        "ZentitleEmulator",
        "allow_contract_violations",
        "charge_dispute_created_event",
        "charge_refunded_event",
        "contract_violations",
        "invoice_paid_event",
        "make_event",
        "one_time_invoice_paid_event",
        "sign_stripe_payload",
        "subscription_deleted_event",
        "subscription_event",
        "take_contract_violations",
    },
    "zentitle_stripe.flask": {"init_app", "make_blueprint"},
    "zentitle_stripe.fastapi": {"make_router"},
    "zentitle_stripe.django": {
        "built_provisioner",
        "get_provisioner",
        "make_urlpatterns",
        "set_provisioner",
        "stripe_webhook",
        "zentitle_webhook",
    },
    "zentitle_stripe.django.apps": {"ZentitleStripeConfig"},
    "zentitle_stripe.django.checks": {"TAG", "check_settings", "check_urls", "register"},
    "zentitle_stripe.django.admin_views": {"events_view"},
    "zentitle_stripe.logging": {"EVENT_FIELDS", "TEXT_FORMAT", "JsonLogFormatter", "dict_config"},
    "zentitle_stripe.telemetry": {"disable", "enable", "enabled", "reset", "route_template"},
    "zentitle_stripe.server": {
        "JsonLogFormatter",
        "configure_logging",
        "create_app",
        "run",
        "serve_in_thread",
    },
}

# Adapter module -> (the framework it imports, the extra that installs it).
ADAPTERS = {
    "zentitle_stripe.flask": ("flask", "flask"),
    "zentitle_stripe.fastapi": ("fastapi", "fastapi"),
    "zentitle_stripe.django": ("django", "django"),
}


def _needs_framework(module: str) -> None:
    package = module if module in ADAPTERS else module.rpartition(".")[0]  # django.apps etc
    framework = ADAPTERS.get(package, (None, None))[0]
    if framework is not None and importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed (the {module} adapter needs it)")


@pytest.mark.parametrize("module", sorted(PUBLIC_API))
def test_public_names_are_pinned_and_importable(module: str) -> None:
    _needs_framework(module)
    imported = importlib.import_module(module)
    exported = list(imported.__all__)
    assert len(exported) == len(set(exported)), f"{module}.__all__ repeats a name"
    assert set(exported) == PUBLIC_API[module]
    missing = [name for name in exported if not hasattr(imported, name)]
    assert not missing, f"{module}.__all__ names what it does not define"


def test_services_is_the_same_class_from_the_root() -> None:
    import zentitle_stripe
    from zentitle_stripe.services import Services

    assert zentitle_stripe.Services is Services


@pytest.mark.parametrize("module", sorted(ADAPTERS))
def test_an_adapter_without_its_framework_names_the_extra(
    module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    framework, extra = ADAPTERS[module]
    monkeypatch.setitem(sys.modules, framework, None)  # makes `import <framework>` fail
    for name in [n for n in sys.modules if n == module or n.startswith(f"{module}.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingExtraError) as raised:
        importlib.import_module(module)
    assert str(raised.value) == (
        f"{module} needs the optional dependency {extra!r}: pip install 'zentitle-stripe[{extra}]'"
    )
    assert raised.value.extra == extra
    assert isinstance(raised.value, ImportError)


def test_the_server_imports_without_its_extra() -> None:
    code = (
        "import sys; sys.modules['starlette'] = sys.modules['uvicorn'] = None;"
        "import zentitle_stripe.server"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("missing", ["starlette", "uvicorn"])
def test_the_server_names_its_extra_when_used_without_it(
    missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zentitle_stripe.server import create_app

    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(MissingExtraError) as raised:
        create_app(None)  # type: ignore[arg-type]  # refused before it is used
    assert str(raised.value) == (
        "zentitle_stripe.server needs the optional dependency 'server': "
        "pip install 'zentitle-stripe[server]'"
    )
