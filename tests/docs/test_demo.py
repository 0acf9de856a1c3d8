"""``zentitle-stripe demo``: every step ends as expected, and a broken step fails the run."""

from __future__ import annotations

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

from zentitle_stripe.cli import main
from zentitle_stripe.demo import DemoStory
from zentitle_stripe.testing import EmulatedWorld, ZentitleEmulator

STEPS = (
    "1 buy 2 products, 1 subscription",
    "2 Zentitle2 webhook -> e-mail",
    "3 same webhook again",
    "4 renewal paid",
    "5 upgrade: 5 seats, 1 more product",
    "6 one-time payment",
    "7 trial: 14 days, then paid",
    "8 subscription cancelled",
)


def test_demo_plays_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    outcomes = (
        "provisioned",
        "handled",
        "duplicate",
        "renewed",
        "updated",
        "ignored",
        "provisioned",
        "revoked",
    )
    for step, outcome in zip(STEPS, outcomes, strict=True):
        [line] = [line for line in lines if step in line]
        assert f" 200  {outcome} " in line
        assert "✓" in line
    assert "To: Ada Lovelace <ada@example.com>" in out
    assert "all 8 steps ended as expected" in out
    [upgrade] = [line for line in lines if STEPS[4] in line]
    assert "PRO-1Y seats 1 -> 5; SUPPORT-1Y added" in upgrade
    assert "proration invoice: duplicate" in upgrade
    [trial] = [line for line in lines if STEPS[6] in line]
    assert "licence to the trial's end" in trial
    assert "first paid invoice: renewed" in trial


def test_a_failed_step_fails_the_demo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Zentitle2 forgets the webhook registration: no activation e-mail goes out.
    monkeypatch.setattr(ZentitleEmulator, "add_webhook", lambda self, uri, subscriptions: "wh_")
    assert main(["demo"]) == 1
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if STEPS[1] in line]
    assert "✗" in line
    assert "7 of 8 steps ended as expected; failed: step 2" in out


def test_the_demo_story_is_an_emulated_world_story() -> None:
    story = DemoStory()
    story.seed()
    assert isinstance(story.world, EmulatedWorld)
    assert (story.stripe, story.zentitle) == (
        story.world.stripe_emulator,
        story.world.zentitle_emulator,
    )
    subscription_id, paid = story.first_subscription()
    assert story.zentitle.now == story.stripe.clock.now  # the world keeps the clocks together
    assert story.world.deliver(paid).status == 200  # the same story plays in process too
    assert [e.sku for e in story.entitlements()] == ["PRO-1Y", "CLOUD-ADDON-1Y"]
    assert story.world.activation_codes(subscription_id)
    story.close()


def test_quickstart_demo_output_is_current() -> None:
    # Stale? Regenerate: python -m tests.docs.regen_quickstart
    from tests.docs.regen_quickstart import QUICKSTART, demo_output, render

    source = QUICKSTART.read_text("utf-8")
    assert render(source, demo_output()) == source


def test_the_upgrade_step_fails_when_the_seats_did_not_follow(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The upgrade is checked against Zentitle2's state, not the answer's word."""
    from zentitle_stripe.flows import items

    monkeypatch.setattr(items, "_target_seats", lambda ctx, sku, quantity: None)
    assert main(["demo"]) == 1
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if STEPS[4] in line]
    assert "✗" in line
    assert "PRO-1Y seats 1 -> 1; SUPPORT-1Y added" in line
    assert "7 of 8 steps ended as expected; failed: step 5" in out


def test_the_trial_step_fails_when_the_trial_licence_runs_a_full_term(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The trial's expiry is never set: the step's check must notice.
    from zentitle_stripe.flows import trials

    monkeypatch.setattr(trials, "set_trial_expiry", lambda ctx, state: (0, 0))
    assert main(["demo"]) == 1
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if STEPS[6] in line]
    assert "✗" in line
    assert "7 of 8 steps ended as expected; failed: step 7" in out
