"""`zentitle-stripe demo`: the whole story offline, over real HTTP, in a few seconds.

The Stripe and Zentitle2 emulators and the real server
([`create_app`][zentitle_stripe.server.create_app] under uvicorn) run on loopback; the
services are configured exactly as a user's would be, through environment-style settings
([`Services.from_env`][zentitle_stripe.services.Services.from_env]), with SQLite in a
temporary directory. Every webhook is signed and POSTed with httpx, and every
step is checked against the emulators' state, so the demo doubles as a smoke test: its
exit code is non-zero when any step did not end as expected.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TextIO

import attrs
import httpx

from .provisioner import Provisioner
from .services import Services
from .zentitle.models import Entitlement
from .zentitle.webhooks import EntitlementGroupCreated

__all__ = ["DemoStory", "StepResult", "run_demo"]

SKUS = ("PRO-1Y", "CLOUD-ADDON-1Y")
UPGRADE_SKU = "SUPPORT-1Y"
"""The product the upgrade step adds (seeded, not in the first subscription)."""
UPGRADE_SEATS = 5
TRIAL_DAYS = 14
EMAIL = "ada@example.com"


@attrs.define
class StepResult:
    """One line of the demo's table."""

    name: str
    status: int | None = None
    outcome: str = "-"
    ok: bool = False
    detail: str = ""


class DemoStory:
    """The demo's story on an [`EmulatedWorld`][zentitle_stripe.testing.EmulatedWorld]:
    its seed data and the steps' shared state.

    Public so tests (the docs examples' among them) can run an app against the same
    served, seeded emulators with [`served`][zentitle_stripe.demo.DemoStory.served] and
    [`first_subscription`][zentitle_stripe.demo.DemoStory.first_subscription]. `stripe`
    and `zentitle` are the world's emulators.
    """

    def __init__(self) -> None:
        from .testing import EmulatedWorld

        self.world = EmulatedWorld()
        self.stripe = self.world.stripe_emulator
        self.zentitle = self.world.zentitle_emulator
        self.emails: list[str] = []
        self.http: httpx.Client
        self.subscription_id = ""
        self.first_paid: dict[str, Any] = {}
        self.customer_id = ""
        self.prices: list[str] = []
        self.upgrade_price = ""
        self.one_time_price = ""

    def close(self) -> None:
        """Close the world's in-process clients (the served ones need nothing)."""
        self.world.close()

    def sync_clocks(self) -> None:
        """Zentitle2's clock follows Stripe's (a renewal moves Stripe's a year on)."""
        self.world.sync_clocks()

    def seed(self) -> None:
        """Two Zentitle2 offerings, a Stripe price naming each, one customer; a third
        offering and price for the upgrade."""
        for sku in SKUS:
            self.world.offering(sku)
            self.prices.append(self.world.price(sku))
        self.world.offering(UPGRADE_SKU)
        self.upgrade_price = self.world.price(UPGRADE_SKU)
        self.one_time_price = self.stripe.create_price(
            self.stripe.create_product("Printed manual"), recurring=False
        )
        self.customer_id = self.world.customer(email=EMAIL, name="Ada Lovelace")

    def served(self, storage_dir: str) -> contextlib.AbstractContextManager[dict[str, str]]:
        """Serve both emulators on loopback; yields the environment a user would set."""
        return self.world.served(storage_dir)

    def environ(self, zentitle_url: str, stripe_url: str, storage_dir: str) -> dict[str, str]:
        """The settings a user would put in the environment, pointing at the emulators."""
        return self.world.environ(zentitle_url, stripe_url, storage_dir)

    def post(self, event: Mapping[str, Any]) -> tuple[int, Mapping[str, Any]]:
        """Sign `event` as Stripe does and POST it to the server."""
        body, header = self.stripe.sign(event)
        response = self.http.post(
            "/stripe/webhook",
            content=body,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        return response.status_code, response.json()

    def entitlements(self) -> list[Entitlement]:
        """The subscription's entitlements in Zentitle2."""
        return self.world.entitlements(self.subscription_id)

    def first_subscription(self) -> tuple[str, dict[str, Any]]:
        """The customer subscribes to both products; returns the id and `invoice.paid`."""
        items = [(price, 1) for price in self.prices]
        self.subscription_id, self.first_paid = self.world.subscribe(self.customer_id, items)
        return self.subscription_id, self.first_paid

    # -- the steps ----------------------------------------------------------------------

    def buy(self, step: StepResult) -> None:
        self.first_subscription()
        step.status, body = self.post(self.first_paid)
        step.outcome = body["outcome"]
        groups = self.world.groups(self.subscription_id)
        count = len(self.entitlements())
        codes = self.world.activation_codes(self.subscription_id)
        step.ok = step.outcome == "provisioned" and len(groups) == 1 and count == 2 and bool(codes)
        step.detail = f"{len(groups)} group, {count} entitlements; codes on subscription: {codes}"

    def activation_email(self, step: StepResult) -> None:
        responses = self.zentitle.deliver_webhooks(self.http)
        if responses:
            step.status = responses[0].status_code
            step.outcome = responses[0].json().get("outcome", "-")
        step.ok = len(responses) == 1 and step.outcome == "handled" and len(self.emails) == 1
        step.detail = (
            f"entitlement.group.created -> handler e-mailed {EMAIL} (shown above)"
            if step.ok
            else f"{len(responses)} webhook(s) delivered, {len(self.emails)} e-mail(s) sent"
        )

    def duplicate(self, step: StepResult) -> None:
        step.status, body = self.post(self.first_paid)
        step.outcome = body["outcome"]
        groups = self.world.groups(self.subscription_id)
        step.ok = step.outcome == "duplicate" and len(groups) == 1
        step.detail = f"same event {self.first_paid['id']} again; still {len(groups)} group"

    def renew(self, step: StepResult) -> None:
        before = {e.id: e.expiry_date for e in self.entitlements()}
        renewal = self.world.renew(self.subscription_id)
        step.status, body = self.post(renewal)
        step.outcome = body["outcome"]
        after = {e.id: e.expiry_date for e in self.entitlements()}
        moved = [
            later - was
            for i, was in before.items()
            if was is not None and (later := after.get(i)) is not None
        ]
        one_year = all(timedelta(days=365) <= d <= timedelta(days=366) for d in moved)
        step.ok = step.outcome == "renewed" and len(moved) == 2 and one_year
        old, new = min(before.values(), key=str), min(after.values(), key=str)
        step.detail = f"expiry {old:%Y-%m-%d} -> {new:%Y-%m-%d} on {len(moved)} entitlements"

    def upgrade(self, step: StepResult) -> None:
        """A month into the term: PRO-1Y from 1 to 5 seats and SUPPORT-1Y added."""
        self.stripe.now += 30 * 86400
        self.sync_clocks()
        items = [(self.prices[0], UPGRADE_SEATS), (self.prices[1], 1), (self.upgrade_price, 1)]
        updated, proration = self.world.change_items(self.subscription_id, items)
        step.status, body = self.post(updated)
        step.outcome = body["outcome"]
        _, again = self.post(proration)  # the proration invoice: nothing left to change
        live = {
            e.sku: self.world.zentitle.get_entitlement(e.id)
            for e in self.entitlements()
            if e.status == "active"
        }
        pro, added = live.get(SKUS[0]), live.get(UPGRADE_SKU)
        same_term = added is not None and pro is not None and added.expiry_date == pro.expiry_date
        step.ok = (
            step.outcome == "updated"
            and again["outcome"] == "duplicate"
            and len(live) == 3
            and pro is not None
            and pro.seat_count == UPGRADE_SEATS
            and same_term
        )
        seats = pro.seat_count if pro is not None else "?"
        until = f"{added.expiry_date:%Y-%m-%d}" if added and added.expiry_date else "?"
        step.detail = (
            f"{SKUS[0]} seats 1 -> {seats}; {UPGRADE_SKU} added, to {until} with the group; "
            f"proration invoice: {again['outcome']}"
        )

    def one_time(self, step: StepResult) -> None:
        groups_before = len(self.zentitle.groups())
        payment = self.stripe.one_time_payment(self.customer_id, self.one_time_price)
        step.status, body = self.post(payment)
        step.outcome = body["outcome"]
        groups_after = len(self.zentitle.groups())
        step.ok = step.outcome == "ignored" and groups_after == groups_before
        step.detail = f"no subscription, no licence ({groups_after} group in Zentitle2)"

    def trial(self, step: StepResult) -> None:
        """A second subscription, on a 14-day trial: licensed until the trial ends, then
        the first paid invoice extends it to the paid year."""
        items = [(self.prices[0], 1)]
        trial_id, free = self.world.subscribe(self.customer_id, items, trial_days=TRIAL_DAYS)
        step.status, body = self.post(free)
        step.outcome = body["outcome"]
        trial_end = self.stripe.subscription(trial_id)["trial_end"]
        (entitlement,) = self.world.entitlements(trial_id)
        during = self.world.zentitle.get_entitlement(entitlement.id).expiry_date
        paid, _ = self.world.end_trial(trial_id, paid=True)
        _, then = self.post(paid)
        after = self.world.zentitle.get_entitlement(entitlement.id).expiry_date
        period_end = self.stripe.subscription(trial_id)["items"]["data"][0]["current_period_end"]
        step.ok = (
            step.outcome == "provisioned"
            and during is not None
            and int(during.timestamp()) == trial_end
            and then["outcome"] == "renewed"
            and after is not None
            and int(after.timestamp()) == period_end
        )
        shown = [f"{d:%Y-%m-%d}" if d else "?" for d in (during, after)]
        step.detail = (
            f"$0 invoice: licence to the trial's end {shown[0]}; first paid invoice: "
            f"{then['outcome']}, to {shown[1]}"
        )

    def cancel(self, step: StepResult) -> None:
        step.status, body = self.post(self.world.cancel(self.subscription_id))
        step.outcome = body["outcome"]
        entitlements = self.entitlements()
        statuses = [e.status for e in entitlements]
        step.ok = step.outcome == "revoked" and bool(statuses)
        step.ok = step.ok and all(status == "disabled" for status in statuses)
        step.detail = "entitlements now " + ", ".join(f"{e.sku} {e.status}" for e in entitlements)


def _marks(out: TextIO) -> tuple[str, str]:
    """✓/✗ where the terminal can show them, ok/FAIL where it cannot."""
    try:
        "✓✗".encode(getattr(out, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return "ok", "FAIL"
    return "✓", "✗"


Write = Callable[[str], None]


def run_demo(out: TextIO | None = None) -> int:
    """Play the story, print a table and a summary; 0 when every step ended as expected."""
    from .server import _require_server_extra, create_app, serve_in_thread

    _require_server_extra()
    stream = out if out is not None else sys.stdout
    yes, no = _marks(stream)
    demo = DemoStory()
    demo.seed()

    def write(line: str = "") -> None:
        print(line, file=stream, flush=True)

    with contextlib.ExitStack() as stack:
        stack.callback(demo.close)
        storage_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="zentitle-stripe-"))
        environ = stack.enter_context(demo.served(storage_dir))
        services = stack.enter_context(Services.from_env(environ))
        _send_activation_emails(services.provisioner, demo, write)
        base_url = stack.enter_context(serve_in_thread(create_app(services)))
        demo.http = stack.enter_context(httpx.Client(base_url=base_url, timeout=10.0))
        demo.zentitle.add_webhook(f"{base_url}/zentitle/webhook", ["entitlement.group.created"])

        write(f"zentitle-stripe demo: server {base_url}, emulated Stripe and Zentitle2 on loopback")
        results = _play(demo, write, (yes, no))
    passed = sum(r.ok for r in results)
    write()
    if passed == len(results):
        write(f"{yes} all {len(results)} steps ended as expected: paid once, licensed once.")
        return 0
    failed = ", ".join(r.name.split(" ", 1)[0] for r in results if not r.ok)
    write(f"{no} {passed} of {len(results)} steps ended as expected; failed: step {failed}")
    return 1


def _send_activation_emails(provisioner: Provisioner, demo: DemoStory, write: Write) -> None:
    """The handler a user would write: "send" (print) the activation e-mail."""

    @provisioner.on_zentitle("entitlement.group.created")
    def send_activation_email(event: EntitlementGroupCreated) -> None:
        details = provisioner.activation_details(event)
        codes = ", ".join(details.activation_codes)
        email = (
            f"    To: {details.customer_name} <{details.email}>\n"
            f"    Subject: Your licences are ready\n"
            f"    Your activation code(s): {codes}"
        )
        demo.emails.append(email)
        write(email)


def _play(demo: DemoStory, write: Write, marks: tuple[str, str]) -> list[StepResult]:
    """Run every step in order, one table line each; a broken step does not stop the rest."""
    yes, no = marks
    steps: list[tuple[str, Callable[[StepResult], None]]] = [
        ("1 buy 2 products, 1 subscription", demo.buy),
        ("2 Zentitle2 webhook -> e-mail", demo.activation_email),
        ("3 same webhook again", demo.duplicate),
        ("4 renewal paid", demo.renew),
        ("5 upgrade: 5 seats, 1 more product", demo.upgrade),
        ("6 one-time payment", demo.one_time),
        ("7 trial: 14 days, then paid", demo.trial),
        ("8 subscription cancelled", demo.cancel),
    ]
    header = f"  {'step':<34} {'HTTP':>4}  {'outcome':<11} {'check':<5}  detail"
    write(header)
    write("  " + "-" * (len(header) + 30))
    results: list[StepResult] = []
    for name, play in steps:
        result = StepResult(name)
        try:
            play(result)
        except Exception as exc:  # a broken step is reported, the story goes on
            result.ok = False
            result.detail = f"error: {type(exc).__name__}: {exc}"
        results.append(result)
        status = str(result.status) if result.status is not None else "-"
        mark = yes if result.ok else no
        write(f"  {result.name:<34} {status:>4}  {result.outcome:<11} {mark:<5}  {result.detail}")
    return results
