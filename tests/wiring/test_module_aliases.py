"""Old import paths of moved modules give the very objects of their new homes."""

from __future__ import annotations

import importlib

import pytest

import zentitle_stripe.stripe
from zentitle_stripe import flows

MOVED = {
    "zentitle_stripe.events": "zentitle_stripe.stripe.events",
    "zentitle_stripe.signature": "zentitle_stripe.stripe.signature",
    "zentitle_stripe.stripe_api": "zentitle_stripe.stripe",
}


@pytest.mark.parametrize(("old", "new"), MOVED.items())
def test_an_old_path_reexports_the_new_objects(old: str, new: str) -> None:
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    for name in old_module.__all__:
        assert getattr(old_module, name) is getattr(new_module, name), name


def test_old_paths_keep_their_public_names() -> None:
    names = {old: sorted(importlib.import_module(old).__all__) for old in MOVED}
    assert names == {
        "zentitle_stripe.events": [
            "Invoice",
            "InvoiceLine",
            "StripeEvent",
            "Subscription",
            "SubscriptionItem",
            "parse_event",
            "parse_invoice",
            "parse_invoice_line",
            "parse_subscription",
        ],
        "zentitle_stripe.signature": [
            "DEFAULT_TOLERANCE",
            "compute_signature",
            "verify_stripe_signature",
        ],
        "zentitle_stripe.stripe_api": [
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
        ],
    }


def test_the_stripe_package_exports_every_name_of_the_old_modules() -> None:
    old = {name for module in MOVED for name in importlib.import_module(module).__all__}
    assert set(zentitle_stripe.stripe.__all__) == old
    for name in zentitle_stripe.stripe.__all__:
        assert getattr(zentitle_stripe.stripe, name) is not None


def test_the_flows_package_keeps_its_public_names_and_old_constants() -> None:
    assert flows.__all__ == [
        "CODES_METADATA_KEY",
        "CUSTOMER_METADATA_KEY",
        "SKU_METADATA_KEY",
        "ActivationDetails",
        "Provisioning",
        "activation_details",
    ]
    from zentitle_stripe.flows import activation, customers, first_payment, renewal

    assert flows.ActivationDetails is activation.ActivationDetails
    assert flows.activation_details is activation.activation_details
    assert flows.COVERAGE_SLACK is renewal.COVERAGE_SLACK
    assert flows.MAX_RENEWS_PER_EVENT is renewal.MAX_RENEWS_PER_EVENT
    assert vars(flows)["_pending"] is customers.pending_key
    assert vars(flows)["_LicensedLine"] is first_payment.LicensedLine
    assert flows.logger.name == "zentitle_stripe.flows"


def test_import_stripe_inside_the_package_is_still_stripe_python() -> None:
    import stripe

    from zentitle_stripe.stripe import gateway

    assert vars(gateway)["stripe"] is stripe
    assert hasattr(stripe, "StripeClient")
