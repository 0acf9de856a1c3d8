"""`zentitle-stripe release`: a dispute that came before the first payment held the
subscription, so the payment created nothing; lifting the hold and replaying the payment
provisions it, end to end over the served emulators and SQLite storage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Env, served_env
from zentitle_stripe import Provisioner


@pytest.fixture
def env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    with served_env(tmp_path, capsys, monkeypatch) as served:
        served.monkeypatch.setenv("ZENTITLE_STRIPE_ON_DISPUTE", "disable")
        yield served


def test_release_lifts_the_hold_and_a_replay_provisions(env: Env) -> None:
    env.offering("PRO-1Y")
    subscription_id, paid = env.subscribe("PRO-1Y")
    dispute = env.stripe.dispute_invoice(paid["data"]["object"]["id"])
    provisioner = Provisioner.from_env()
    try:
        assert provisioner.handle_event(*env.stripe.sign(dispute)).outcome.kind.value == "revoked"
        held = provisioner.handle_event(*env.stripe.sign(paid))
        assert held.outcome.kind.value == "ignored"
        assert "is held" in held.outcome.reason
    finally:
        provisioner.close()

    code, out, _ = env.run("release", subscription_id)
    assert code == 0
    assert f"lifted the hold of subscription {subscription_id}" in out
    assert "is disputed" in out
    assert env.run_json("release", subscription_id) == (
        1,
        {"subscription": subscription_id, "released": False, "reason": None},
    )

    code, out, _ = env.run("replay", paid["id"])
    assert code == 0, out
    assert "provisioned" in out
    assert env.zentitle.groups(order_ref_id=subscription_id)


def test_release_of_a_subscription_without_a_hold_says_so(env: Env) -> None:
    code, out, _ = env.run("release", "sub_unknown")
    assert code == 1
    assert "has no refund or dispute hold" in out
