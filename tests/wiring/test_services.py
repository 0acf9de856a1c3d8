"""``Services``: one wiring path from settings, and one owner that closes every part once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zentitle_stripe import Provisioner, Settings
from zentitle_stripe.flows import Provisioning
from zentitle_stripe.services import Services
from zentitle_stripe.storage import MemoryStorage, Storage
from zentitle_stripe.storage.sqlite import SQLiteStorage
from zentitle_stripe.stripe_api import StripeGateway
from zentitle_stripe.zentitle import ZentitleClient

ENV = {
    "STRIPE_API_KEY": "sk_test_services",
    "STRIPE_WEBHOOK_SECRET": "whsec_services",
    "ZENTITLE_API_URL": "https://api.zentitle.invalid",
    "ZENTITLE_TOKEN_URL": "https://auth.zentitle.invalid/token",
    "ZENTITLE_TENANT_ID": "t_1",
    "ZENTITLE_CLIENT_ID": "c_1",
    "ZENTITLE_CLIENT_SECRET": "zentitle-secret-value",
    "ZENTITLE_STRIPE_STORAGE": "memory://",
    "ZENTITLE_STRIPE_LEASE_SECONDS": "45",
}


class ClosingLog:
    """Collects the names of closed parts, in order."""

    def __init__(self) -> None:
        self.closed: list[str] = []


class LoggedStorage(MemoryStorage):
    def __init__(self, log: ClosingLog, *, fail: bool = False) -> None:
        super().__init__()
        self.log, self.fail = log, fail

    def close(self) -> None:
        self.log.closed.append("storage")
        if self.fail:
            raise RuntimeError("storage would not close")


class LoggedGateway(StripeGateway):
    def __init__(self, log: ClosingLog) -> None:
        super().__init__("sk_test_services", api_base="https://stripe.invalid")
        self.log = log

    def close(self) -> None:
        self.log.closed.append("stripe")
        super().close()


class LoggedClient(ZentitleClient):
    def __init__(self, log: ClosingLog, *, fail: bool = False) -> None:
        super().__init__(
            "https://api.zentitle.invalid", "t_1", "c_1", "s", "https://auth.zentitle.invalid/t"
        )
        self.log, self.fail = log, fail

    def close(self) -> None:
        self.log.closed.append("zentitle")
        super().close()
        if self.fail:
            raise RuntimeError("zentitle would not close")


def build(
    log: ClosingLog, *, storage_fails: bool = False, zentitle_fails: bool = False
) -> Services:
    return Services(
        Settings.from_env(ENV),
        storage=LoggedStorage(log, fail=storage_fails),
        stripe=LoggedGateway(log),
        zentitle=LoggedClient(log, fail=zentitle_fails),
    )


def test_close_closes_every_part_exactly_once_whoever_asks() -> None:
    log = ClosingLog()
    services = build(log)
    services.close()
    services.close()
    services.provisioner.close()
    assert log.closed == ["zentitle", "stripe", "storage"]
    assert services.closed


def test_the_context_manager_closes_on_the_way_out_even_after_an_error() -> None:
    log = ClosingLog()
    services = build(log)
    with services as entered:
        assert entered is services
        assert log.closed == []
    assert log.closed == ["zentitle", "stripe", "storage"]

    failing = ClosingLog()

    def fail_inside() -> None:
        with build(failing):
            raise KeyError("boom")

    with pytest.raises(KeyError):
        fail_inside()
    assert failing.closed == ["zentitle", "stripe", "storage"]


def test_a_part_that_fails_to_close_does_not_keep_the_others_open() -> None:
    log = ClosingLog()
    services = build(log, zentitle_fails=True, storage_fails=True)
    with pytest.raises(RuntimeError, match="would not close"):
        services.close()
    assert log.closed == ["zentitle", "stripe", "storage"]
    services.close()  # closed is closed, even after a failure: nothing runs twice
    assert log.closed == ["zentitle", "stripe", "storage"]


def test_the_provisioner_is_wired_onto_the_same_parts_and_settings() -> None:
    log = ClosingLog()
    with build(log) as services:
        provisioner = services.provisioner
        assert provisioner.storage is services.storage
        assert provisioner.stripe is services.stripe
        assert provisioner.zentitle is services.zentitle
        assert provisioner.settings is services.settings
        assert provisioner.lease_seconds == 45
        assert isinstance(provisioner.processor, Provisioning)
        assert provisioner.processor.storage is services.storage


def test_from_env_opens_one_storage_and_shares_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zentitle_stripe.storage import open_storage

    opened: list[Storage] = []

    def counting_open(url: str) -> Storage:
        opened.append(open_storage(url))
        return opened[-1]

    monkeypatch.setattr("zentitle_stripe.services.open_storage", counting_open)
    environ = {**ENV, "ZENTITLE_STRIPE_STORAGE": f"sqlite:///{tmp_path}/licences.db"}
    with Services.from_env(environ) as services:
        assert len(opened) == 1
        assert isinstance(services.storage, SQLiteStorage)
        assert services.storage is opened[0]
        assert services.provisioner.storage is opened[0]
        assert isinstance(services.provisioner.processor, Provisioning)
        assert services.provisioner.processor.storage is opened[0]
        assert isinstance(services.stripe, StripeGateway)
        assert isinstance(services.zentitle, ZentitleClient)
    text = repr(services) + repr(services.settings)
    for secret in ("sk_test_services", "whsec_services", "zentitle-secret-value"):
        assert secret not in text


def test_provisioner_from_env_builds_through_services_and_closes_them() -> None:
    provisioner = Provisioner.from_env(ENV)
    services = provisioner.services
    assert services is not None
    assert services.provisioner is provisioner
    assert provisioner.settings is services.settings
    provisioner.close()
    assert services.closed


def test_a_part_that_cannot_be_built_closes_what_was_already_opened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import zentitle_stripe.stripe_api as stripe_api

    log = ClosingLog()
    monkeypatch.setattr("zentitle_stripe.services.open_storage", lambda url: LoggedStorage(log))

    def no_gateway(*args: Any, **kwargs: Any) -> StripeGateway:
        raise RuntimeError("no Stripe today")

    monkeypatch.setattr(stripe_api, "StripeGateway", no_gateway)
    with pytest.raises(RuntimeError, match="no Stripe today"):
        Services.from_env(ENV)
    assert log.closed == ["storage"]


def test_a_provisioner_built_by_hand_closes_the_parts_it_was_given_once() -> None:
    log = ClosingLog()
    provisioner = Provisioner(
        webhook_secrets=["whsec_x"],
        storage=LoggedStorage(log),
        stripe=LoggedGateway(log),
        zentitle=LoggedClient(log),
    )
    assert provisioner.services is None
    assert provisioner.settings is None
    provisioner.close()
    provisioner.close()
    assert log.closed == ["zentitle", "stripe", "storage"]
