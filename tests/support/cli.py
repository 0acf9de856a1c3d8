"""The command line against both emulators served on loopback: the environment set as a
user would, `run` returning what `cli.main` printed.

Shared by `tests/ops/test_cli.py` and the replay and history tests.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zentitle_stripe.cli import main
from zentitle_stripe.storage import open_storage
from zentitle_stripe.testing import StripeEmulator, ZentitleEmulator

__all__ = ["Env", "served_env"]


class Env:
    """Both served emulators, seeding helpers and a ``run`` that returns (code, out, err)."""

    def __init__(
        self,
        stripe: StripeEmulator,
        zentitle: ZentitleEmulator,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.stripe = stripe
        self.zentitle = zentitle
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def offering(self, sku: str, **plan: Any) -> None:
        product = self.zentitle.add_product(sku)
        plan_id = self.zentitle.add_plan(product, **plan)
        self.zentitle.add_offering(sku=sku, product_id=product, plan_id=plan_id)

    def price(self, sku: str | None, *, on_product: bool = False) -> str:
        metadata = {"offering_sku": sku} if sku else {}
        product = self.stripe.create_product("P", metadata=metadata if on_product else None)
        return self.stripe.create_price(product, metadata=None if on_product else metadata)

    def subscribe(self, sku: str) -> tuple[str, dict[str, Any]]:
        customer = self.stripe.create_customer(email="ada@example.com", name="Ada")
        return self.stripe.create_subscription(customer, [(self.price(sku), 1)])

    def run(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    def run_json(self, *argv: str) -> tuple[int, Any]:
        code, out, _ = self.run(*argv, "--json")
        return code, json.loads(out)


@contextlib.contextmanager
def served_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    """Both emulators served, and the environment (SQLite storage in `tmp_path`, created
    as the app would on start) pointing at them, for as long as the block runs."""
    stripe, zentitle = StripeEmulator(), ZentitleEmulator()
    with stripe.serve() as stripe_url, zentitle.serve() as zentitle_url:
        for name, value in {
            "STRIPE_API_KEY": stripe.api_key,
            "STRIPE_API_BASE": stripe_url,
            "STRIPE_WEBHOOK_SECRET": stripe.webhook_secret,
            "ZENTITLE_API_URL": zentitle_url,
            "ZENTITLE_TOKEN_URL": f"{zentitle_url}/realms/{zentitle.tenant_id}"
            "/protocol/openid-connect/token",
            "ZENTITLE_TENANT_ID": zentitle.tenant_id,
            "ZENTITLE_CLIENT_ID": zentitle.client_id,
            "ZENTITLE_CLIENT_SECRET": zentitle.client_secret,
            "ZENTITLE_STRIPE_STORAGE": f"sqlite:///{tmp_path / 'events.db'}",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("ZENTITLE_STRIPE_WEBHOOK_URL", raising=False)
        open_storage(f"sqlite:///{tmp_path / 'events.db'}").close()  # as the app would
        yield Env(stripe, zentitle, capsys, monkeypatch)
