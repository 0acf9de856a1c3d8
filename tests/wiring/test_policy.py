"""The lifecycle policy: validated up front, read from the environment, wired through."""

from __future__ import annotations

from datetime import timedelta

import pytest

from zentitle_stripe import LifecyclePolicy
from zentitle_stripe.config import Settings
from zentitle_stripe.exceptions import ConfigurationError
from zentitle_stripe.policy import CORE_EVENTS, DEFAULT_POLICY

from .test_config import ENV as BASE_ENV


def test_the_default_policy_needs_only_the_core_events_plus_pause() -> None:
    assert DEFAULT_POLICY.events() == (
        *CORE_EVENTS,
        "customer.subscription.paused",
        "customer.subscription.resumed",
    )


def test_a_policy_that_acts_on_refunds_and_disputes_needs_their_events() -> None:
    policy = LifecyclePolicy(pause="ignore", refund="disable", dispute="disable")
    assert policy.events() == (*CORE_EVENTS, "charge.refunded", "charge.dispute.created")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"trial": "free"}, "trial"),
        ({"pause": "delete"}, "pause"),
        ({"refund": "revoke"}, "refund"),
        ({"past_due_grace": timedelta(days=-1)}, "past_due_grace"),
        ({"past_due_grace": 7}, "past_due_grace"),
    ],
)
def test_a_bad_setting_is_refused_by_name(options: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        LifecyclePolicy(**options)  # type: ignore[arg-type]


def test_the_environment_sets_the_policy() -> None:
    env = {
        **BASE_ENV,
        "ZENTITLE_STRIPE_TRIAL": "wait",
        "ZENTITLE_STRIPE_PAST_DUE_GRACE_DAYS": "0",
        "ZENTITLE_STRIPE_ON_PAUSE": "ignore",
        "ZENTITLE_STRIPE_ON_REFUND": "Disable",
    }
    policy = Settings.from_env(env, env_file=None).lifecycle
    assert policy == LifecyclePolicy(
        trial="wait", past_due_grace=timedelta(0), pause="ignore", refund="disable"
    )
    assert Settings.from_env(BASE_ENV, env_file=None).lifecycle == DEFAULT_POLICY


def test_every_bad_policy_variable_is_reported_at_once() -> None:
    env = {**BASE_ENV, "ZENTITLE_STRIPE_TRIAL": "free", "ZENTITLE_STRIPE_ON_DISPUTE": "x"}
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env, env_file=None)
    assert len(caught.value.problems) == 2
    assert "ZENTITLE_STRIPE_TRIAL" in str(caught.value)
    assert "ZENTITLE_STRIPE_ON_DISPUTE" in str(caught.value)
