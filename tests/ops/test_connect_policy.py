"""`connect` subscribes the endpoint to exactly the lifecycle policy's events; `doctor`
fails an endpoint missing one, naming what would go wrong, and only mentions extras."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Env, served_env
from zentitle_stripe import ops
from zentitle_stripe.catalogue import MISSING_EVENT_CONSEQUENCES
from zentitle_stripe.ops import CheckStatus
from zentitle_stripe.policy import DEFAULT_POLICY, LifecyclePolicy
from zentitle_stripe.testing import EmulatedWorld

URL = "https://licences.example.com/stripe/webhook"
STRICT = LifecyclePolicy(refund="disable", dispute="disable")
RELAXED = LifecyclePolicy(pause="ignore")

pytestmark = pytest.mark.world(offerings={})


@pytest.mark.parametrize(
    "policy", [DEFAULT_POLICY, STRICT, RELAXED], ids=["default", "strict", "relaxed"]
)
def test_connect_creates_the_endpoint_with_exactly_the_policys_events(
    world: EmulatedWorld, policy: LifecyclePolicy
) -> None:
    created = ops.connect_webhook(world.stripe, URL, events=policy.events())

    assert created.endpoint.enabled_events == policy.events()
    assert ops.check_webhook_endpoint(world.stripe, URL, policy).status is CheckStatus.PASS


def test_every_event_any_policy_needs_has_a_consequence() -> None:
    every = set(STRICT.events()) | set(DEFAULT_POLICY.events())
    assert every <= set(MISSING_EVENT_CONSEQUENCES)


def test_connect_brings_an_endpoint_to_a_stricter_policy_and_back(world: EmulatedWorld) -> None:
    ops.connect_webhook(world.stripe, URL)

    stricter = ops.connect_webhook(world.stripe, URL, events=STRICT.events())
    assert stricter.action == "updated"
    assert stricter.endpoint.enabled_events == STRICT.events()
    assert "added charge.refunded, charge.dispute.created" in " ".join(stricter.notes)

    relaxed = ops.connect_webhook(world.stripe, URL, events=RELAXED.events())
    assert relaxed.endpoint.enabled_events == RELAXED.events()
    notes = " ".join(relaxed.notes)
    assert "removed customer.subscription.paused, customer.subscription.resumed" in notes
    again = ops.connect_webhook(world.stripe, URL, events=RELAXED.events())
    assert again.action == "reused"


def test_connect_replaces_a_wildcard_with_the_policys_events(world: EmulatedWorld) -> None:
    world.stripe.create_webhook_endpoint(URL, ["*"])
    result = ops.connect_webhook(world.stripe, URL)
    assert result.endpoint.enabled_events == DEFAULT_POLICY.events()
    assert "removed *" in " ".join(result.notes)


def test_doctor_names_what_goes_wrong_for_each_missing_event(world: EmulatedWorld) -> None:
    ops.connect_webhook(world.stripe, URL)  # the default policy's events

    check = ops.check_webhook_endpoint(world.stripe, URL, STRICT)

    assert check.status is CheckStatus.FAIL
    assert (
        "does not send charge.refunded (a fully refunded subscription payment keeps its "
        "licence), charge.dispute.created (a disputed subscription payment keeps its licence)"
    ) in check.detail
    assert check.fix is not None
    assert check.fix.startswith(f"run: zentitle-stripe connect --url {URL}")


def test_doctor_only_mentions_events_the_policy_does_not_act_on(world: EmulatedWorld) -> None:
    ops.connect_webhook(world.stripe, URL, events=STRICT.events())

    check = ops.check_webhook_endpoint(world.stripe, URL, DEFAULT_POLICY)

    assert check.status is CheckStatus.PASS
    assert "also sends charge.refunded, charge.dispute.created" in check.detail
    assert "does not act on" in check.detail
    wildcard = EmulatedWorld()
    try:
        wildcard.stripe.create_webhook_endpoint(URL, ["*"])
        check = ops.check_webhook_endpoint(wildcard.stripe, URL)
        assert check.status is CheckStatus.PASS
        assert "every event type (*)" in check.detail
    finally:
        wildcard.close()


def test_run_doctor_checks_the_endpoint_against_the_given_policy(world: EmulatedWorld) -> None:
    ops.connect_webhook(world.stripe, URL)
    report = ops.run_doctor(
        stripe=world.stripe,
        zentitle=None,
        storage=None,
        webhook_url=URL,
        raw_webhook_secret=world.stripe_emulator.webhook_secret,
        policy=STRICT,
    )
    (endpoint,) = [c for c in report.checks if c.name == "webhook endpoint"]
    assert endpoint.status is CheckStatus.FAIL
    assert "charge.refunded" in endpoint.detail


# -- the CLI reads the policy from the configuration ------------------------------------


@pytest.fixture
def env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    with served_env(tmp_path, capsys, monkeypatch) as served:
        yield served


def test_cli_connect_and_doctor_follow_the_configured_policy(env: Env) -> None:
    env.monkeypatch.setenv("ZENTITLE_STRIPE_ON_REFUND", "disable")
    code, data = env.run_json("connect", "--url", URL)
    assert code == 0, data
    assert data["enabled_events"] == [*DEFAULT_POLICY.events(), "charge.refunded"]
    code, report = env.run_json("doctor", "--url", URL)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["webhook endpoint"]["status"] == "PASS"

    env.monkeypatch.setenv("ZENTITLE_STRIPE_ON_DISPUTE", "disable")
    code, report = env.run_json("doctor", "--url", URL)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["webhook endpoint"]["status"] == "FAIL"
    assert "charge.dispute.created (a disputed" in checks["webhook endpoint"]["detail"]
    assert code == 1


def test_cli_connect_names_a_bad_policy_setting(env: Env) -> None:
    env.monkeypatch.setenv("ZENTITLE_STRIPE_ON_REFUND", "revoke")
    code, _, err = env.run("connect", "--url", URL)
    assert code == 2
    assert "ZENTITLE_STRIPE_ON_REFUND must be 'disable' or 'ignore'" in err
