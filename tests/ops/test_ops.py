"""The operations logic (:mod:`zentitle_stripe.ops`) against both emulators, in process."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from zentitle_stripe import ops
from zentitle_stripe.exceptions import StorageError
from zentitle_stripe.ops import CheckStatus
from zentitle_stripe.policy import DEFAULT_POLICY
from zentitle_stripe.storage import EventStatus, MemoryStorage
from zentitle_stripe.storage.sqlite import SCHEMA_VERSION, SQLiteStorage
from zentitle_stripe.stripe_api import StripeGateway
from zentitle_stripe.testing import EmulatedWorld

URL = "https://licences.example.com/stripe/webhook"
DAY = 86400


pytestmark = pytest.mark.world(offerings={})


def _doctor(world: EmulatedWorld, **overrides: Any) -> ops.DoctorReport:
    options: dict[str, Any] = {
        "stripe": world.stripe,
        "zentitle": world.zentitle,
        "storage": world.storage,
        "webhook_url": URL,
        "raw_webhook_secret": world.stripe_emulator.webhook_secret,
    }
    options.update(overrides)
    return ops.run_doctor(**options)


def _by_name(report: ops.DoctorReport, name: str) -> list[ops.Check]:
    return [c for c in report.checks if c.name == name]


def _statuses(checks: list[ops.Check]) -> set[CheckStatus]:
    return {c.status for c in checks}


# -- doctor -------------------------------------------------------------------------------


def test_doctor_passes_a_correct_setup(world: EmulatedWorld) -> None:
    world.offering("PRO-1Y")
    world.price("PRO-1Y")
    world.price(None)  # an unlicensed price is fine
    ops.connect_webhook(world.stripe, URL)
    progress: list[str] = []

    report = _doctor(world, progress=progress.append)

    assert [c.status for c in report.checks] == [CheckStatus.PASS] * len(report.checks), report
    names = [c.name for c in report.checks]
    assert names == [
        "webhook signing secret",
        "Stripe key",
        "webhook endpoint",
        "Zentitle2",
        "catalogue",
        "storage",
    ]
    assert "test mode" in report.checks[1].detail
    assert not report.failed
    assert report.to_json()["ok"] is True
    assert progress[-1] == "checked 2/2 prices"


@pytest.mark.parametrize("sku", ["pro-1y", "PRO-1Y ", " Pro-1y"])
def test_doctor_names_a_near_miss_sku(world: EmulatedWorld, sku: str) -> None:
    world.offering("PRO-1Y")
    price = world.price(sku)

    checks = ops.check_catalogue(world.stripe, world.zentitle)

    problem = next(c for c in checks if c.name == f"price {price}")
    assert problem.status is CheckStatus.FAIL
    assert problem.detail == (
        f"{price} has offering_sku {sku!r}; Zentitle2 has 'PRO-1Y' "
        "(SKUs match exactly, case-sensitively)"
    )
    assert problem.fix == "set the Price's offering_sku to 'PRO-1Y'"
    assert checks[-1].name == "catalogue"
    assert checks[-1].status is CheckStatus.FAIL


def test_doctor_reports_an_unknown_sku_and_a_close_one(world: EmulatedWorld) -> None:
    world.offering("PRO-1Y")
    unknown = world.price("ENTERPRISE")
    typo = world.price("PRO-1")

    checks = {c.name: c for c in ops.check_catalogue(world.stripe, world.zentitle)}

    assert "no Zentitle2 offering has it" in checks[f"price {unknown}"].detail
    assert "Zentitle2 has 'PRO-1Y'" in checks[f"price {typo}"].detail


def test_doctor_reports_a_sku_on_the_product(world: EmulatedWorld) -> None:
    world.offering("PRO-1Y")
    price = world.price("PRO-1Y", on_product=True)

    checks = ops.check_catalogue(world.stripe, world.zentitle)

    problem = next(c for c in checks if c.name == f"price {price}")
    assert problem.status is CheckStatus.FAIL
    assert "is on Product" in problem.detail
    assert problem.fix is not None
    assert "from the Product to the Price" in problem.fix


def _offering_on_plan(world: EmulatedWorld, sku: str, **plan: Any) -> None:
    emulator = world.zentitle_emulator
    product = emulator.add_product(sku)
    plan_id = emulator.add_plan(product, **plan)
    emulator.add_offering(sku=sku, product_id=product, plan_id=plan_id)


def test_doctor_fails_a_plan_that_starts_at_activation(world: EmulatedWorld) -> None:
    _offering_on_plan(world, "PRO-1Y", license_start_type="activation")
    price = world.price("PRO-1Y")

    checks = ops.check_catalogue(world.stripe, world.zentitle)

    problem = next(c for c in checks if c.name == f"price {price}")
    assert problem.status is CheckStatus.FAIL
    assert "licenseStartType 'activation'" in problem.detail


def test_doctor_fails_a_perpetual_plan(world: EmulatedWorld) -> None:
    _offering_on_plan(world, "PERP", license_type="perpetual", duration=None)
    world.price("PERP")

    checks = ops.check_catalogue(world.stripe, world.zentitle)

    assert any("licenseType 'perpetual'" in c.detail for c in checks)
    assert checks[-1].status is CheckStatus.FAIL


@pytest.mark.parametrize(
    ("plan", "interval", "status"),
    [
        (("year", 1), "year", CheckStatus.PASS),
        (("month", 12), "year", CheckStatus.PASS),
        (("month", 1), "month", CheckStatus.PASS),
        (("year", 1), "month", CheckStatus.WARN),
        (("month", 1), "year", CheckStatus.WARN),
    ],
)
def test_doctor_compares_the_plan_duration_with_the_billing_interval(
    world: EmulatedWorld, plan: tuple[str, int], interval: Any, status: CheckStatus
) -> None:
    _offering_on_plan(world, "SKU", duration=plan)
    world.price("SKU", interval=interval)

    checks = ops.check_catalogue(world.stripe, world.zentitle)

    assert checks[-1].status is status
    if status is CheckStatus.WARN:
        assert "Stripe bills every 1" in checks[0].detail


def test_doctor_ignores_archived_and_one_time_prices(world: EmulatedWorld) -> None:
    archived = world.price("NOPE")
    world.stripe_emulator.archive_price(archived)
    world.price("ALSO-NOPE", recurring=False)

    checks = ops.check_catalogue(world.stripe, world.zentitle)

    assert len(checks) == 1
    assert checks[0].status is CheckStatus.WARN
    assert "no payment will create a licence" in checks[0].detail


def test_doctor_honours_the_lookup_key_fallback(world: EmulatedWorld) -> None:
    world.offering("PRO-1Y")
    world.price(None, lookup_key="PRO-1Y")

    plain = ops.check_catalogue(world.stripe, world.zentitle)
    fallback = ops.check_catalogue(world.stripe, world.zentitle, lookup_key_fallback=True)

    assert plain[-1].status is CheckStatus.WARN
    assert fallback[-1].status is CheckStatus.PASS
    assert "1 with offering_sku" in fallback[-1].detail


def test_doctor_fails_without_an_endpoint(world: EmulatedWorld) -> None:
    world.stripe.create_webhook_endpoint(URL + "/", ["*"])

    check = ops.check_webhook_endpoint(world.stripe, URL)

    assert check.status is CheckStatus.FAIL
    assert check.detail.startswith(f"no webhook endpoint for {URL}; similar URL(s)")
    assert check.fix == f"run: zentitle-stripe connect --url {URL}"


def test_doctor_fails_an_endpoint_missing_events_or_disabled(world: EmulatedWorld) -> None:
    endpoint = world.stripe.create_webhook_endpoint(URL, ["invoice.paid"])
    world.stripe.update_webhook_endpoint(endpoint.id, disabled=True)

    check = ops.check_webhook_endpoint(world.stripe, URL)

    assert check.status is CheckStatus.FAIL
    assert "does not send customer.subscription.updated (" in check.detail
    assert (
        "customer.subscription.deleted (a cancelled subscription keeps its licence)" in check.detail
    )
    assert check.detail.endswith("and is disabled")


def test_doctor_accepts_a_wildcard_endpoint(world: EmulatedWorld) -> None:
    world.stripe.create_webhook_endpoint(URL, ["*"])
    assert ops.check_webhook_endpoint(world.stripe, URL).status is CheckStatus.PASS


def test_doctor_warns_about_duplicate_endpoints(world: EmulatedWorld) -> None:
    for _ in range(2):
        world.stripe.create_webhook_endpoint(URL, list(DEFAULT_POLICY.events()))
    check = ops.check_webhook_endpoint(world.stripe, URL)
    assert check.status is CheckStatus.WARN
    assert "events arrive twice" in check.detail


def test_doctor_warns_when_no_url_is_known(world: EmulatedWorld) -> None:
    check = ops.check_webhook_endpoint(world.stripe, None)
    assert check.status is CheckStatus.WARN
    assert check.fix is not None
    assert "ZENTITLE_STRIPE_WEBHOOK_URL" in check.fix


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("whsec_abcdef123456\n", "the secret has a trailing newline"),
        ("  whsec_abcdef123456", "the secret has leading whitespace"),
        ("whsec_abcdef123456, whsec_0987654321", "entry 2 has leading whitespace"),
        ("whsec_abc def", "the secret has whitespace inside it"),
        ("sk_test_abcdef", "the secret does not start with whsec_"),
        ("whsec_abcdef,", "entry 2 is empty"),
        (None, "STRIPE_WEBHOOK_SECRET is not set"),
        ("   ", "STRIPE_WEBHOOK_SECRET is not set"),
    ],
)
def test_doctor_fails_stray_whitespace_and_malformed_secrets(raw: str | None, problem: str) -> None:
    check = ops.check_webhook_secrets(raw)
    assert check.status is CheckStatus.FAIL
    assert problem in check.detail
    assert "abcdef123456" not in check.detail + (check.fix or "")


def test_doctor_passes_clean_secrets_and_masks_them() -> None:
    check = ops.check_webhook_secrets("whsec_old0000001111,whsec_new0000002222")
    assert check.status is CheckStatus.PASS
    assert check.detail == "2 secret(s): whsec_****1111, whsec_****2222"


def test_doctor_fails_bad_zentitle_credentials(world: EmulatedWorld) -> None:
    emulator = world.zentitle_emulator
    with emulator.client(sleep=lambda s: None) as good:
        assert ops.check_zentitle(good).status is CheckStatus.PASS
    with emulator.client(sleep=lambda s: None) as bad:
        bad._client_secret = "wrong"
        check = ops.check_zentitle(bad)
        report = _doctor(world, zentitle=bad)
    assert check.status is CheckStatus.FAIL
    assert check.fix is not None
    assert "ZENTITLE_CLIENT_SECRET" in check.fix
    assert report.failed
    assert _statuses(_by_name(report, "catalogue")) == {CheckStatus.WARN}


def test_doctor_fails_a_wrong_tenant(world: EmulatedWorld) -> None:
    with world.zentitle_emulator.client(sleep=lambda s: None) as client:
        client.tenant_id = "t_other"
        check = ops.check_zentitle(client)
    assert check.status is CheckStatus.FAIL
    assert check.fix is not None
    assert "ZENTITLE_TENANT_ID" in check.fix


def test_doctor_fails_a_refused_stripe_key(world: EmulatedWorld) -> None:
    with StripeGateway(
        "sk_live_not_the_right_one_1234",
        api_base="http://stripe.emulator",
        max_network_retries=0,
        http_transport=world.stripe_emulator.transport(),
    ) as gateway:
        check = ops.check_stripe_key(gateway)
        report = _doctor(world, stripe=gateway)
    assert check.status is CheckStatus.FAIL
    assert "401" in check.detail
    assert "not_the_right_one" not in check.detail
    assert check.fix is not None
    assert "STRIPE_API_KEY" in check.fix
    assert not _by_name(report, "webhook endpoint")


def test_doctor_fails_unreachable_storage(world: EmulatedWorld) -> None:
    class Broken(MemoryStorage):
        def ping(self) -> None:
            raise StorageError("database is down")

    check = ops.check_storage(Broken())
    assert check.status is CheckStatus.FAIL
    assert check.detail == "database is down"


def test_doctor_reports_a_configuration_error_first() -> None:
    report = ops.run_doctor(
        stripe=None,
        zentitle=None,
        storage=None,
        webhook_url=None,
        raw_webhook_secret="whsec_x",
        configuration_error="STRIPE_API_KEY is not set",
    )
    assert [(c.name, c.status) for c in report.checks] == [
        ("configuration", CheckStatus.FAIL),
        ("webhook signing secret", CheckStatus.PASS),
    ]


# -- connect ------------------------------------------------------------------------------


def test_connect_creates_then_reuses_the_endpoint(world: EmulatedWorld) -> None:
    created = ops.connect_webhook(world.stripe, URL)

    assert created.action == "created"
    assert created.secret is not None
    assert created.secret.startswith("whsec_")
    assert created.endpoint.enabled_events == DEFAULT_POLICY.events()
    assert created.endpoint.api_version == ops.DEFAULT_WEBHOOK_API_VERSION
    assert created.secret not in repr(created)

    again = ops.connect_webhook(world.stripe, URL)

    assert again.action == "reused"
    assert again.secret is None
    assert again.endpoint.id == created.endpoint.id
    assert any("Roll secret" in note for note in again.notes)
    assert len(world.stripe.list_webhook_endpoints()) == 1


def test_connect_adds_missing_events_and_enables(world: EmulatedWorld) -> None:
    endpoint = world.stripe.create_webhook_endpoint(
        URL, ["invoice.paid", "charge.refunded"], api_version="2024-06-20"
    )
    world.stripe.update_webhook_endpoint(endpoint.id, disabled=True)

    result = ops.connect_webhook(world.stripe, URL)

    assert result.action == "updated"
    assert result.endpoint.enabled_events == DEFAULT_POLICY.events()
    assert result.endpoint.status == "enabled"
    notes = " ".join(result.notes)
    assert "added customer.subscription.updated, customer.subscription.deleted" in notes
    assert "removed charge.refunded" in notes  # the default policy only logs refunds
    assert "enabled the endpoint" in notes
    assert "pins API version 2024-06-20" in notes


def test_connect_refuses_plain_http(world: EmulatedWorld) -> None:
    with pytest.raises(ValueError, match="https"):
        ops.connect_webhook(world.stripe, "http://example.com/hook")


def test_write_env_secret_is_private_and_keeps_other_lines(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\nSTRIPE_WEBHOOK_SECRET=whsec_old\nexport STRIPE_WEBHOOK_SECRET=x\nB=2\n")
    os.chmod(env, 0o644)

    ops.write_env_secret(env, "whsec_new")

    assert env.read_text() == "A=1\nB=2\nSTRIPE_WEBHOOK_SECRET=whsec_new\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    fresh = tmp_path / "new.env"
    ops.write_env_secret(fresh, "whsec_new")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "new.env"]


# -- events and replay --------------------------------------------------------------------


def test_replay_failed_events_after_fixing_the_setup(world: EmulatedWorld) -> None:
    price = world.price("PRO-1Y")
    _, paid = world.subscribe(world.customer(), [(price, 1)])
    assert world.deliver(paid).status == 422
    failed = ops.failed_events(world.storage)
    assert [r.event_id for r in failed] == [paid["id"]]
    assert ops.event_to_json(failed[0])["status"] == "failed"
    assert "payload" not in ops.event_to_json(failed[0])

    world.offering("PRO-1Y")
    progress: list[str] = []
    results = ops.replay_events(
        world.provisioner, [(r.event_id, r.source) for r in failed], progress=progress.append
    )

    assert [(r.status, r.outcome, r.ok) for r in results] == [(200, "provisioned", True)]
    assert ops.failed_events(world.storage) == []
    assert progress == ["checked 1/1 events"]


def test_replay_of_an_unknown_event_is_not_ok(world: EmulatedWorld) -> None:
    [result] = ops.replay_events(world.provisioner, [("evt_missing", "stripe")])
    assert not result.ok
    assert result.status == 404
    assert result.to_json()["ok"] is False


def test_failed_events_are_oldest_first(world: EmulatedWorld) -> None:
    price = world.price("NOPE")
    customer = world.customer()
    first = world.subscribe(customer, [(price, 1)])[1]
    second = world.subscribe(customer, [(price, 1)])[1]
    world.deliver(first)
    world.deliver(second)
    assert [r.event_id for r in ops.failed_events(world.storage)] == [first["id"], second["id"]]


# -- reconcile ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("72h", 259200), ("3d", 259200), ("2w", 1209600), (" 90S ", 90)],
)
def test_parse_since(text: str, seconds: int) -> None:
    assert ops.parse_since(text) == seconds


@pytest.mark.parametrize("text", ["", "3", "0d", "-1h", "3 days", "1y"])
def test_parse_since_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        ops.parse_since(text)


def test_reconcile_processes_missed_events_once(world: EmulatedWorld) -> None:
    world.offering("PRO-1Y")
    price = world.price("PRO-1Y")
    customer = world.customer()
    delivered_sub, delivered = world.subscribe(customer, [(price, 1)])
    assert world.deliver(delivered).status == 200
    missed_sub, missed = world.subscribe(customer, [(price, 1)])
    canceled = world.cancel(delivered_sub)  # never delivered either
    progress: list[str] = []

    report = ops.reconcile(
        world.provisioner,
        world.stripe,
        world.zentitle,
        since_seconds=3 * DAY,
        progress=progress.append,
    )

    assert [(e.event_id, e.action, e.outcome) for e in report.events] == [
        (delivered["id"], "skipped", "provisioned"),
        (missed["id"], "processed", "provisioned"),
        (canceled["id"], "processed", "revoked"),
    ]
    assert report.ok, report
    assert report.drift == ()
    assert world.active_entitlements(missed_sub)
    assert not world.active_entitlements(delivered_sub)
    assert world.storage.get_event(missed["id"]).status is EventStatus.DONE  # type: ignore[union-attr]
    assert "fetched 3 event(s) since" in progress[0]

    again = ops.reconcile(world.provisioner, world.stripe, world.zentitle, since_seconds=DAY)
    assert [e.action for e in again.events] == ["skipped"] * 3
    assert len(world.groups(missed_sub)) == 1
    assert json.loads(json.dumps(again.to_json()))["ok"] is True


def test_reconcile_clamps_to_thirty_days(world: EmulatedWorld) -> None:
    now = 2_000_000_000
    report = ops.reconcile(
        world.provisioner,
        world.stripe,
        world.zentitle,
        since_seconds=60 * DAY,
        now=now,
        check_drift=False,
    )
    assert report.clamped
    assert report.window_start == now - 30 * DAY
    assert report.drift is None
    params = world.stripe_emulator.requests[-1].params
    assert params["created"] == {"gte": str(now - 30 * DAY)}
    # and the status changes the default policy acts on (nothing else heals a lost one)
    assert params["types"] == [
        *ops.REQUIRED_EVENTS,
        "customer.subscription.updated",
        "customer.subscription.paused",
        "customer.subscription.resumed",
    ]


def test_reconcile_fails_when_processing_fails(world: EmulatedWorld) -> None:
    price = world.price("UNKNOWN")
    world.subscribe(world.customer(), [(price, 1)])

    report = ops.reconcile(
        world.provisioner, world.stripe, world.zentitle, since_seconds=DAY, check_drift=False
    )

    assert [(e.status, e.outcome) for e in report.events] == [(422, "failed")]
    assert report.failed == 1
    assert not report.ok


def test_reconcile_reports_an_unlicensed_subscription(world: EmulatedWorld) -> None:
    world.offering("PRO-1Y")
    price = world.price("PRO-1Y")
    customer = world.customer()
    world.stripe_emulator.now -= 40 * DAY  # paid long ago, its event is out of reach
    subscription, _ = world.subscribe(customer, [(price, 1)])
    world.subscribe(customer, [(world.price(None), 1)])  # unlicensed: no drift

    report = ops.reconcile(world.provisioner, world.stripe, world.zentitle, since_seconds=DAY)

    assert report.events == ()
    assert report.drift is not None
    [drift] = report.drift
    assert drift.kind == "unlicensed"
    assert drift.subscription_id == subscription
    assert drift.stripe_customer_id == customer
    assert "no Zentitle2 customer is linked" in drift.detail
    assert not report.ok


def test_drift_finds_a_disabled_group_of_an_active_subscription(world: EmulatedWorld) -> None:
    world.offering("PRO-1Y")
    subscription, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    world.deliver(paid)
    [entitlement] = world.entitlements(subscription)
    world.zentitle.disable_entitlement(entitlement.id)

    [drift] = ops.find_drift(world.stripe, world.zentitle, world.storage)

    assert drift.kind == "unlicensed"
    assert drift.group_ids == (world.groups(subscription)[0].id,)
    assert drift.zentitle_customer_id is not None
    assert "have no live entitlement" in drift.detail


def test_drift_finds_licences_of_ended_and_missing_subscriptions(world: EmulatedWorld) -> None:
    world.offering("PRO-1Y")
    price = world.price("PRO-1Y")
    subscription, paid = world.subscribe(world.customer(), [(price, 1)])
    world.deliver(paid)
    world.cancel(subscription)  # the cancellation is never delivered
    ghost = world.zentitle.create_entitlement_group(skus=["PRO-1Y"], order_ref_id="sub_gone")
    world.zentitle.create_entitlement_group(skus=["PRO-1Y"], order_ref_id="in_manual")

    drift = {
        d.subscription_id: d for d in ops.find_drift(world.stripe, world.zentitle, world.storage)
    }

    assert set(drift) == {subscription, "sub_gone"}
    assert drift[subscription].kind == "orphaned"
    assert f"subscription {subscription} is canceled" in drift[subscription].detail
    assert drift["sub_gone"].group_ids == (ghost.id,)
    assert "does not exist" in drift["sub_gone"].detail


def test_trusted_events_are_claimed_processed_and_recorded(world: EmulatedWorld) -> None:
    world.offering("PRO-1Y")
    subscription, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])

    first = ops.process_trusted_event(world.provisioner, paid)
    second = ops.process_trusted_event(world.provisioner, json.dumps(paid))
    other = ops.process_trusted_event(world.provisioner, {**paid, "id": "evt_x", "type": "x"})
    broken = ops.process_trusted_event(world.provisioner, b"{}")

    assert (first.status, first.outcome.kind.value) == (200, "provisioned")
    assert (second.status, second.outcome.kind.value) == (200, "duplicate")
    assert (other.status, other.outcome.kind.value) == (200, "ignored")
    assert broken.status == 400
    assert len(world.groups(subscription)) == 1


def test_trusted_event_failures_are_recorded(world: EmulatedWorld) -> None:
    _, paid = world.subscribe(world.customer(), [(world.price("NOPE"), 1)])

    response = ops.process_trusted_event(world.provisioner, paid)

    assert response.status == 422
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert record.status is EventStatus.FAILED


# -- migrate ------------------------------------------------------------------------------


def test_migrate_sqlite_and_memory(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "events.db"))
    try:
        result = ops.migrate_storage(storage)
    finally:
        storage.close()
    assert result.version == SCHEMA_VERSION
    assert ops.migrate_storage(MemoryStorage()).version is None


def test_migrate_calls_the_backend_migrate() -> None:
    class Migrating(MemoryStorage):
        def migrate(self) -> int:
            return 7

    result = ops.migrate_storage(Migrating())
    assert (result.version, result.detail) == (7, "schema created or upgraded")
    assert result.to_json()["version"] == 7
