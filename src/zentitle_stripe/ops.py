"""The operations behind ``doctor``, ``connect``, ``events``, ``replay``, ``reconcile`` and
``migrate``, as library functions returning result objects.

They take their collaborators explicitly (a :class:`~zentitle_stripe.stripe_api.StripeOpsAPI`,
a :class:`~zentitle_stripe.zentitle.ZentitleAPI`, a :class:`~zentitle_stripe.storage.Storage`
or a :class:`~zentitle_stripe.provisioner.Provisioner`) so they run as well against the
emulators in tests as from the command line, which only prints what they return. Long work
reports through ``progress``, a callable given one short line at a time.
"""

from __future__ import annotations

import difflib
import enum
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .events import Subscription
from .exceptions import (
    RemoteAPIError,
    StripeAPIError,
    ZentitleAPIError,
    ZentitleStripeError,
)
from .flows import CUSTOMER_METADATA_KEY, SKU_METADATA_KEY
from .responses import WebhookResponse
from .storage import EventRecord, EventStatus, Storage

if TYPE_CHECKING:
    from .provisioner import Provisioner
    from .stripe_api import Price, StripeOpsAPI, WebhookEndpoint
    from .zentitle import ZentitleAPI
    from .zentitle.models import EntitlementGroup, Offering

__all__ = [
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
]

REQUIRED_EVENTS: tuple[str, ...] = ("invoice.paid", "customer.subscription.deleted")
"""The event types the provisioner acts on; the webhook endpoint must send both."""
DEFAULT_WEBHOOK_API_VERSION = "2026-10-28.endive"
"""Pinned on endpoints ``connect`` creates, so payload shapes do not change under us."""
EVENTS_WINDOW_SECONDS = 30 * 86400
"""``GET /v1/events`` only returns events of the last 30 days."""

Progress = Callable[[str], None]
"""Receives one short progress line at a time (the CLI prints them to stderr)."""

_LIVE_ENTITLEMENT = frozenset({"active", "gracePeriod", "created"})
"""Entitlement statuses that still license something (``created``: not yet activated)."""
_ENDED_SUBSCRIPTION = frozenset({"canceled", "incomplete_expired"})
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _quiet(_: str) -> None:
    """The default progress sink."""


def _every(progress: Progress, done: int, total: int, what: str, step: int = 50) -> None:
    if done == total or done % step == 0:
        progress(f"checked {done}/{total} {what}")


# -- doctor ------------------------------------------------------------------------------


class CheckStatus(str, enum.Enum):
    """The verdict of one ``doctor`` check."""

    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    WARN = "WARN"
    """Works, but probably not as intended."""
    FAIL = "FAIL"
    """Payments will not become licences until this is fixed."""


@attrs.frozen
class Check:
    """One ``doctor`` finding: what was checked, what was found and how to fix it."""

    name: str
    status: CheckStatus
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
        }


@attrs.frozen
class DoctorReport:
    """Every check ``doctor`` ran, in order."""

    checks: tuple[Check, ...]

    @property
    def failed(self) -> bool:
        return any(c.status is CheckStatus.FAIL for c in self.checks)

    @property
    def warned(self) -> bool:
        return any(c.status is CheckStatus.WARN for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"ok": not self.failed, "checks": [c.to_json() for c in self.checks]}


def run_doctor(
    *,
    stripe: StripeOpsAPI | None,
    zentitle: ZentitleAPI | None,
    storage: Storage | None,
    webhook_url: str | None,
    raw_webhook_secret: str | None,
    lookup_key_fallback: bool = False,
    configuration_error: str | None = None,
    progress: Progress = _quiet,
) -> DoctorReport:
    """Run every check whose collaborators are available, cheapest first.

    ``raw_webhook_secret`` is the unprocessed ``STRIPE_WEBHOOK_SECRET`` value, because the
    settings loader trims it and would hide the whitespace this looks for.
    """
    checks: list[Check] = []
    if configuration_error is not None:
        checks.append(
            Check(
                "configuration",
                CheckStatus.FAIL,
                configuration_error,
                "set the variable it names (see the configuration docs)",
            )
        )
    checks.append(check_webhook_secrets(raw_webhook_secret))
    stripe_ok = zentitle_ok = False
    if stripe is not None:
        key = check_stripe_key(stripe)
        checks.append(key)
        stripe_ok = key.status is not CheckStatus.FAIL
        if stripe_ok:
            checks.append(check_webhook_endpoint(stripe, webhook_url))
    if zentitle is not None:
        reach = check_zentitle(zentitle)
        checks.append(reach)
        zentitle_ok = reach.status is not CheckStatus.FAIL
    if stripe is not None and zentitle is not None:
        if stripe_ok and zentitle_ok:
            checks.extend(
                check_catalogue(
                    stripe, zentitle, lookup_key_fallback=lookup_key_fallback, progress=progress
                )
            )
        else:
            checks.append(
                Check(
                    "catalogue",
                    CheckStatus.WARN,
                    "not checked: Stripe or Zentitle2 is not reachable",
                    "fix the failing checks above, then run doctor again",
                )
            )
    if storage is not None:
        checks.append(check_storage(storage))
    return DoctorReport(tuple(checks))


def check_stripe_key(stripe: StripeOpsAPI) -> Check:
    """The key authenticates (``GET /v1/account``), and whether it is test or live."""
    mode = stripe.mode
    try:
        account = stripe.retrieve_account()
    except StripeAPIError as exc:
        if exc.status == 403:
            return Check(
                "Stripe key",
                CheckStatus.WARN,
                f"{mode} mode key authenticates but may not read the account (restricted key)",
                "give the restricted key read access to Prices, Products, Customers, "
                "Subscriptions, Invoices, Events and Webhook endpoints, write access to "
                "Subscriptions and Customers",
            )
        fix = (
            "STRIPE_API_KEY is refused: copy a current secret key (sk_...) or restricted key "
            "(rk_...) from the Dashboard, Developers > API keys"
            if exc.status == 401
            else "check the network and STRIPE_API_BASE (unset it for the real Stripe)"
        )
        return Check("Stripe key", CheckStatus.FAIL, str(exc), fix)
    if mode == "unknown":
        return Check(
            "Stripe key",
            CheckStatus.WARN,
            f"key works (account {account.id}) but its prefix says neither test nor live",
            "use an sk_test_/sk_live_ (or rk_) key",
        )
    return Check("Stripe key", CheckStatus.PASS, f"{mode} mode key works (account {account.id})")


def check_webhook_endpoint(stripe: StripeOpsAPI, url: str | None) -> Check:
    """An enabled endpoint for ``url`` sends both events this library acts on."""
    name = "webhook endpoint"
    if not url:
        return Check(
            name,
            CheckStatus.WARN,
            "no webhook URL given, so the endpoint was not checked",
            "pass --url https://.../stripe/webhook or set ZENTITLE_STRIPE_WEBHOOK_URL",
        )
    try:
        endpoints = stripe.list_webhook_endpoints()
    except StripeAPIError as exc:
        return Check(name, CheckStatus.FAIL, str(exc), "give the key read access to webhooks")
    matches = [e for e in endpoints if e.url == url]
    if not matches:
        near = [e.url for e in endpoints if _loose_url(e.url) == _loose_url(url)]
        hint = (
            f"; similar URL(s) registered: {', '.join(near)} (URLs match exactly)" if near else ""
        )
        return Check(
            name,
            CheckStatus.FAIL,
            f"no webhook endpoint for {url}{hint}",
            f"run: zentitle-stripe connect --url {url}",
        )
    endpoint = min(matches, key=lambda e: (len(_missing_events(e)), e.status != "enabled"))
    problems = []
    missing = _missing_events(endpoint)
    if missing:
        problems.append(f"does not send {', '.join(missing)}")
    if endpoint.status != "enabled":
        problems.append(f"is {endpoint.status or 'not enabled'}")
    if problems:
        return Check(
            name,
            CheckStatus.FAIL,
            f"endpoint {endpoint.id} for {url} {' and '.join(problems)}",
            f"run: zentitle-stripe connect --url {url} (adds the events and enables it)",
        )
    extra = f"; {len(matches)} endpoints have this URL, so events arrive twice" * (len(matches) > 1)
    return Check(
        name,
        CheckStatus.WARN if extra else CheckStatus.PASS,
        f"endpoint {endpoint.id} is enabled and sends {', '.join(REQUIRED_EVENTS)} "
        f"(API version {endpoint.api_version or 'account default'}){extra}",
        "delete the duplicate endpoints in the Dashboard" if extra else None,
    )


def _missing_events(endpoint: WebhookEndpoint) -> list[str]:
    if "*" in endpoint.enabled_events:
        return []
    return [e for e in REQUIRED_EVENTS if e not in endpoint.enabled_events]


def _loose_url(url: str) -> str:
    return url.strip().rstrip("/").casefold()


def check_webhook_secrets(raw: str | None) -> Check:
    """Each signing secret is a bare ``whsec_...`` value: copy-paste often adds a newline
    or spaces, and a secret with one inside can never verify a signature."""
    name = "webhook signing secret"
    fix = (
        "set STRIPE_WEBHOOK_SECRET to the endpoint's signing secret(s) exactly (whsec_..., "
        "comma-separated while rotating), with no spaces or newlines"
    )
    if raw is None or not raw.strip():
        return Check(
            name,
            CheckStatus.FAIL,
            "STRIPE_WEBHOOK_SECRET is not set",
            "copy the signing secret from the endpoint's page in the Dashboard, or run "
            "zentitle-stripe connect --url ... --write-env .env",
        )
    entries = raw.split(",")
    problems = []
    for index, entry in enumerate(entries, 1):
        core = entry.strip()
        label = f"entry {index}" if len(entries) > 1 else "the secret"
        if entry != core:
            where = [
                side
                for side, stray in (
                    ("leading", entry[: len(entry) - len(entry.lstrip())]),
                    ("trailing", entry[len(entry.rstrip()) :]),
                )
                if stray
            ]
            sides = " and ".join(where)
            newline = "\n" in entry or "\r" in entry
            problems.append(
                f"{label} has a {sides} newline" if newline else f"{label} has {sides} whitespace"
            )
        if any(c.isspace() for c in core):
            problems.append(f"{label} has whitespace inside it")
        if not core:
            problems.append(f"{label} is empty")
        elif not core.startswith("whsec_"):
            problems.append(f"{label} does not start with whsec_")
    if problems:
        return Check(name, CheckStatus.FAIL, "; ".join(problems), fix)
    masked = ", ".join(f"whsec_****{e[-4:]}" for e in entries)
    return Check(name, CheckStatus.PASS, f"{len(entries)} secret(s): {masked}")


def check_zentitle(zentitle: ZentitleAPI) -> Check:
    """The credentials obtain a token and the tenant answers (``ZentitleAPI.ping``)."""
    name = "Zentitle2"
    try:
        zentitle.ping()
    except ZentitleAPIError as exc:
        if exc.status == 403:
            fix = "check ZENTITLE_TENANT_ID (the t_... id of the tenant the client belongs to)"
        elif exc.status in (400, 401) or "access token" in exc.message:
            fix = "check ZENTITLE_CLIENT_ID, ZENTITLE_CLIENT_SECRET and ZENTITLE_TOKEN_URL"
        else:
            fix = "check ZENTITLE_API_URL and the network"
        return Check(name, CheckStatus.FAIL, exc.message, fix)
    tenant = getattr(zentitle, "tenant_id", None)
    where = f" (tenant {tenant})" if tenant else ""
    return Check(name, CheckStatus.PASS, f"token obtained and the API answers{where}")


def check_storage(storage: Storage) -> Check:
    """The event store answers (``Storage.ping``)."""
    try:
        storage.ping()
    except ZentitleStripeError as exc:
        return Check(
            "storage",
            CheckStatus.FAIL,
            str(exc),
            "check ZENTITLE_STRIPE_STORAGE; for PostgreSQL run zentitle-stripe migrate",
        )
    return Check("storage", CheckStatus.PASS, f"{storage!r} is reachable")


def check_catalogue(
    stripe: StripeOpsAPI,
    zentitle: ZentitleAPI,
    *,
    lookup_key_fallback: bool = False,
    progress: Progress = _quiet,
) -> list[Check]:
    """Every active recurring Price that names an offering names one that exists, exactly,
    on a plan that starts at creation and lasts one billing period.

    Returns one check per problem and a ``catalogue`` summary last.
    """
    try:
        offerings = zentitle.list_offerings()
        prices = list(stripe.list_prices(active=True, recurring=True))
    except RemoteAPIError as exc:
        return [Check("catalogue", CheckStatus.FAIL, str(exc), "fix the checks above")]
    by_sku = {o.sku: o for o in offerings if o.sku}
    checks: list[Check] = []
    products: dict[str, Mapping[str, str]] = {}
    licensed = 0
    for done, price in enumerate(prices, 1):
        sku = price.metadata.get(SKU_METADATA_KEY) or (
            price.lookup_key if lookup_key_fallback else None
        )
        if sku:
            licensed += 1
            offering = by_sku.get(sku)
            if offering is None:
                checks.append(_unknown_sku(price, sku, list(by_sku)))
            else:
                checks.extend(_plan_checks(price, sku, offering))
        elif price.product_id:
            checks.extend(_product_sku(stripe, price, products))
        _every(progress, done, len(prices), "prices")
    failed = sum(c.status is CheckStatus.FAIL for c in checks)
    warned = sum(c.status is CheckStatus.WARN for c in checks)
    summary = (
        f"{len(prices)} active recurring price(s), {licensed} with {SKU_METADATA_KEY}, "
        f"{len(by_sku)} Zentitle2 offering(s): {failed} problem(s), {warned} warning(s)"
    )
    if failed:
        checks.append(
            Check("catalogue", CheckStatus.FAIL, summary, "fix the price problems listed above")
        )
    elif not licensed:
        checks.append(
            Check(
                "catalogue",
                CheckStatus.WARN,
                f"{summary}; no payment will create a licence",
                f"add metadata {SKU_METADATA_KEY}=<Zentitle2 offering SKU> to each Price that "
                "sells a licence",
            )
        )
    else:
        checks.append(Check("catalogue", CheckStatus.WARN if warned else CheckStatus.PASS, summary))
    return checks


def _unknown_sku(price: Price, sku: str, known: Sequence[str]) -> Check:
    folded = [k for k in known if k.strip().casefold() == sku.strip().casefold()]
    near = folded or difflib.get_close_matches(sku, known, n=1)
    if near:
        detail = (
            f"{price.id} has {SKU_METADATA_KEY} {sku!r}; Zentitle2 has {near[0]!r} "
            "(SKUs match exactly, case-sensitively)"
        )
        fix = f"set the Price's {SKU_METADATA_KEY} to {near[0]!r}"
    else:
        detail = f"{price.id} has {SKU_METADATA_KEY} {sku!r}, but no Zentitle2 offering has it"
        fix = "create the offering in Zentitle2 or fix the Price's metadata"
    return Check(f"price {price.id}", CheckStatus.FAIL, detail, fix)


def _plan_checks(price: Price, sku: str, offering: Offering) -> list[Check]:
    name = f"price {price.id}"
    plan = offering.plan
    if plan is None:
        return [
            Check(
                name,
                CheckStatus.WARN,
                f"offering {sku!r} ({offering.id}) came without its plan, so its terms were "
                "not checked",
                None,
            )
        ]
    checks = []
    if plan.license_type != "subscription":
        checks.append(
            Check(
                name,
                CheckStatus.FAIL,
                f"offering {sku!r} is on plan {plan.id} with licenseType "
                f"{plan.license_type!r}, but a Stripe subscription needs a subscription plan",
                "map the Price to an offering whose plan has licenseType subscription",
            )
        )
    if plan.license_start_type != "entitlementCreation":
        checks.append(
            Check(
                name,
                CheckStatus.FAIL,
                f"offering {sku!r} is on plan {plan.id} with licenseStartType "
                f"{plan.license_start_type!r}: the term would not start when the first "
                "payment creates the licence, so renewals drift from Stripe's periods",
                "set the plan's licence start type to entitlementCreation",
            )
        )
    stripe_months = _months(price.recurring_interval, price.recurring_interval_count)
    duration = plan.license_duration
    plan_months = _months(duration.type, duration.count) if duration else None
    if stripe_months is None or plan_months is None or stripe_months != plan_months:
        billed = f"every {price.recurring_interval_count or 1} {price.recurring_interval}"
        lasts = f"{duration.count or 1} {duration.type}" if duration else "no licenseDuration"
        checks.append(
            Check(
                name,
                CheckStatus.WARN,
                f"Stripe bills {billed}, but the plan of offering {sku!r} lasts {lasts}",
                "make the plan's licenseDuration equal the Price's billing interval",
            )
        )
    return checks


def _months(interval: str | None, count: int | None) -> int | None:
    per = {"month": 1, "year": 12}.get(interval or "")
    return per * (count or 1) if per else None


def _product_sku(
    stripe: StripeOpsAPI, price: Price, products: dict[str, Mapping[str, str]]
) -> list[Check]:
    assert price.product_id is not None
    metadata = products.get(price.product_id)
    if metadata is None:
        try:
            metadata = stripe.retrieve_product(price.product_id).metadata
        except StripeAPIError:
            metadata = {}
        products[price.product_id] = metadata
    if SKU_METADATA_KEY not in metadata:
        return []
    return [
        Check(
            f"price {price.id}",
            CheckStatus.FAIL,
            f"{SKU_METADATA_KEY} {metadata[SKU_METADATA_KEY]!r} is on Product "
            f"{price.product_id}, not on its Price {price.id}, so payments create no licence",
            f"move the {SKU_METADATA_KEY} metadata from the Product to the Price",
        )
    ]


# -- connect ------------------------------------------------------------------------------


@attrs.frozen
class ConnectResult:
    """What ``connect`` did: ``created``, ``updated`` or ``reused`` the endpoint.

    ``endpoint.secret`` is set only when ``created``: Stripe never shows it again.
    """

    action: str
    endpoint: WebhookEndpoint
    notes: tuple[str, ...] = ()

    @property
    def secret(self) -> str | None:
        return self.endpoint.secret

    def to_json(self, *, include_secret: bool = True) -> dict[str, Any]:
        return {
            "action": self.action,
            "endpoint_id": self.endpoint.id,
            "url": self.endpoint.url,
            "enabled_events": list(self.endpoint.enabled_events),
            "status": self.endpoint.status,
            "api_version": self.endpoint.api_version,
            "secret": self.secret if include_secret else None,
            "notes": list(self.notes),
        }


ROLL_HINT = (
    "Stripe shows an endpoint's signing secret only when it is created. To get a new one, "
    "open Dashboard > Developers > Webhooks > the endpoint > Roll secret, then put the new "
    "secret first in STRIPE_WEBHOOK_SECRET (comma-separated with the old one until it expires)"
)


def connect_webhook(
    stripe: StripeOpsAPI,
    url: str,
    *,
    api_version: str = DEFAULT_WEBHOOK_API_VERSION,
    events: Sequence[str] = REQUIRED_EVENTS,
) -> ConnectResult:
    """Create the webhook endpoint for ``url``, or bring an existing one up to date.

    Idempotent: an endpoint with this exact URL is reused; missing events are added (others
    kept) and a disabled one is enabled. Stripe cannot change an endpoint's API version, so
    a different one is only reported.
    """
    if not url.startswith("https://"):
        raise ValueError(f"the webhook URL must be https:// (Stripe requires it), got {url!r}")
    matches = [e for e in stripe.list_webhook_endpoints() if e.url == url]
    if not matches:
        created = stripe.create_webhook_endpoint(url, list(events), api_version=api_version)
        return ConnectResult("created", created)
    notes = []
    if len(matches) > 1:
        notes.append(
            f"{len(matches)} endpoints have this URL ({', '.join(e.id for e in matches)}), so "
            "every event arrives more than once: delete the extra ones in the Dashboard"
        )
    endpoint = matches[0]
    enabled = list(endpoint.enabled_events)
    missing = [] if "*" in enabled else [e for e in events if e not in enabled]
    disabled = endpoint.status != "enabled"
    if missing or disabled:
        endpoint = stripe.update_webhook_endpoint(
            endpoint.id,
            enabled_events=[*enabled, *missing] if missing else None,
            disabled=False if disabled else None,
        )
        if missing:
            notes.append(f"added {', '.join(missing)} to the endpoint's events")
        if disabled:
            notes.append("enabled the endpoint, which was disabled")
    if endpoint.api_version != api_version:
        notes.append(
            f"the endpoint pins API version {endpoint.api_version or 'account default'}, not "
            f"{api_version}; Stripe cannot change that, so create a new endpoint if it matters"
        )
    notes.append(ROLL_HINT)
    return ConnectResult("updated" if missing or disabled else "reused", endpoint, tuple(notes))


def write_env_secret(path: str | os.PathLike[str], secret: str) -> None:
    """Set ``STRIPE_WEBHOOK_SECRET=`` in an env file, keeping its other lines, mode 0600.

    Written to a private temporary file and renamed over the target, so the secret is never
    readable by others, not even for a moment.
    """
    target = Path(path)
    line = f"STRIPE_WEBHOOK_SECRET={secret}"
    lines = target.read_text().splitlines() if target.exists() else []
    pattern = re.compile(r"^\s*(export\s+)?STRIPE_WEBHOOK_SECRET\s*=")
    kept = [existing for existing in lines if not pattern.match(existing)]
    content = "\n".join([*kept, line]) + "\n"
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(content)
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# -- events and replay --------------------------------------------------------------------


def _iso(timestamp: float | None) -> str | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def event_to_json(record: EventRecord) -> dict[str, Any]:
    """An event record as JSON, without its payload (it can hold personal data)."""
    return {
        "event_id": record.event_id,
        "source": record.source,
        "type": record.type,
        "status": record.status.value,
        "attempts": record.attempts,
        "outcome": record.outcome,
        "detail": record.detail,
        "last_error": record.last_error,
        "received_at": _iso(record.received_at),
        "updated_at": _iso(record.updated_at),
    }


@attrs.frozen
class ReplayResult:
    """The response to processing one recorded event again."""

    event_id: str
    source: str
    status: int
    outcome: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == 200

    @classmethod
    def from_response(cls, event_id: str, source: str, response: WebhookResponse) -> ReplayResult:
        return cls(
            event_id, source, response.status, response.outcome.kind.value, response.outcome.reason
        )

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self) | {"ok": self.ok}


def failed_events(
    storage: Storage, *, source: str | None = None, limit: int = 1000
) -> list[EventRecord]:
    """Failed events, oldest first, so a replay keeps their original order."""
    return list(
        reversed(storage.list_events(status=EventStatus.FAILED, source=source, limit=limit))
    )


def replay_events(
    provisioner: Provisioner,
    targets: Iterable[tuple[str, str]],
    *,
    progress: Progress = _quiet,
) -> list[ReplayResult]:
    """Process each ``(event_id, source)`` again through :meth:`Provisioner.replay`."""
    todo = list(targets)
    results = []
    for done, (event_id, source) in enumerate(todo, 1):
        response = provisioner.replay(event_id, source)
        results.append(ReplayResult.from_response(event_id, source, response))
        _every(progress, done, len(todo), "events", step=20)
    return results


# -- reconcile ----------------------------------------------------------------------------


def parse_since(text: str) -> int:
    """``72h``, ``3d``, ``30m``, ``90s`` or ``2w`` as seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text.lower())
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"expected a duration such as 72h, 3d or 30m, got {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def process_trusted_event(
    provisioner: Provisioner, event: Mapping[str, Any] | bytes | str
) -> WebhookResponse:
    """Feed an event fetched from Stripe's API (over an authenticated call, so it needs no
    signature) through the same claim/process/finish path as a webhook."""
    if isinstance(event, Mapping):
        body: bytes | str = json.dumps(event, separators=(",", ":")).encode()
    else:
        body = event
    return provisioner.handle_trusted_event(body)


@attrs.frozen
class ReconciledEvent:
    """One event ``reconcile`` found: ``skipped`` (already done) or ``processed``."""

    event_id: str
    type: str
    created: int | None
    action: str
    status: int | None = None
    outcome: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.action == "skipped" or self.status == 200

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self) | {"created": _iso(self.created), "ok": self.ok}


@attrs.frozen
class Drift:
    """A disagreement between Stripe and Zentitle2 that no recent event explains.

    ``kind`` is ``unlicensed`` (an active subscription without a live licence) or
    ``orphaned`` (live entitlements of a subscription that ended or does not exist).
    """

    kind: str
    subscription_id: str
    detail: str
    fix: str
    stripe_customer_id: str | None = None
    zentitle_customer_id: str | None = None
    group_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self) | {"group_ids": list(self.group_ids)}


@attrs.frozen
class ReconcileReport:
    """What ``reconcile`` processed and the drift that remains."""

    window_start: int
    clamped: bool
    events: tuple[ReconciledEvent, ...]
    drift: tuple[Drift, ...] | None
    """``None`` when the drift check was not run."""

    @property
    def processed(self) -> int:
        return sum(e.action == "processed" for e in self.events)

    @property
    def failed(self) -> int:
        return sum(not e.ok for e in self.events)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.drift

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "window_start": _iso(self.window_start),
            "clamped": self.clamped,
            "processed": self.processed,
            "failed": self.failed,
            "events": [e.to_json() for e in self.events],
            "drift": None if self.drift is None else [d.to_json() for d in self.drift],
        }


def reconcile(
    provisioner: Provisioner,
    stripe: StripeOpsAPI,
    zentitle: ZentitleAPI,
    *,
    since_seconds: int,
    now: float | None = None,
    check_drift: bool = True,
    lookup_key_fallback: bool = False,
    progress: Progress = _quiet,
) -> ReconcileReport:
    """Process every ``invoice.paid`` / ``customer.subscription.deleted`` event of the window
    that storage has not finished, oldest first, then look for drift.

    Webhooks can be lost (endpoint down past Stripe's retries, a wrong secret); Stripe keeps
    events for 30 days, so ``since_seconds`` is clamped to that (``clamped`` says so).
    """
    current = int(time.time() if now is None else now)
    clamped = since_seconds > EVENTS_WINDOW_SECONDS
    window_start = current - min(since_seconds, EVENTS_WINDOW_SECONDS)
    newest_first = []
    for event in stripe.list_events(REQUIRED_EVENTS, created_gte=window_start):
        newest_first.append(event)
        if len(newest_first) % 100 == 0:
            progress(f"fetched {len(newest_first)} events")
    todo = list(reversed(newest_first))
    progress(f"fetched {len(todo)} event(s) since {_iso(window_start)}")
    results = []
    for done, event in enumerate(todo, 1):
        event_id, event_type = str(event.get("id")), str(event.get("type"))
        created = event.get("created") if isinstance(event.get("created"), int) else None
        record = provisioner.storage.get_event(event_id, "stripe")
        if record is not None and record.status is EventStatus.DONE:
            results.append(
                ReconciledEvent(
                    event_id,
                    event_type,
                    created,
                    "skipped",
                    outcome=record.outcome,
                    detail=record.detail,
                )
            )
        else:
            response = process_trusted_event(provisioner, event)
            results.append(
                ReconciledEvent(
                    event_id,
                    event_type,
                    created,
                    "processed",
                    response.status,
                    response.outcome.kind.value,
                    response.outcome.reason,
                )
            )
        _every(progress, done, len(todo), "events", step=20)
    drift = None
    if check_drift:
        drift = tuple(
            find_drift(
                stripe,
                zentitle,
                provisioner.storage,
                lookup_key_fallback=lookup_key_fallback,
                progress=progress,
            )
        )
    return ReconcileReport(window_start, clamped, tuple(results), drift)


def _live(group: EntitlementGroup) -> bool:
    return any(e.status in _LIVE_ENTITLEMENT for e in group.entitlements)


def _licensed_skus(subscription: Subscription, lookup_key_fallback: bool) -> list[str]:
    skus = []
    for item in subscription.items:
        metadata = item.price_metadata or {}
        sku = metadata.get(SKU_METADATA_KEY) or (
            item.price_lookup_key if lookup_key_fallback else None
        )
        if sku:
            skus.append(sku)
    return skus


def find_drift(
    stripe: StripeOpsAPI,
    zentitle: ZentitleAPI,
    storage: Storage,
    *,
    lookup_key_fallback: bool = False,
    progress: Progress = _quiet,
) -> list[Drift]:
    """Active licensed subscriptions without a live Zentitle2 group, and live groups whose
    subscription ended or never existed.

    Zentitle2 cannot filter groups by ``orderRefId``, and the reverse check needs every
    group anyway, so all groups are listed once and matched here (one paged listing instead
    of one per subscription).
    """
    groups = zentitle.list_entitlement_groups()
    progress(f"listed {len(groups)} Zentitle2 entitlement group(s)")
    by_ref: dict[str, list[EntitlementGroup]] = {}
    for group in groups:
        if group.order_ref_id:
            by_ref.setdefault(group.order_ref_id, []).append(group)
    active = list(stripe.list_subscriptions(status="active"))
    drift = []
    for done, subscription in enumerate(active, 1):
        found = _unlicensed(stripe, storage, subscription, by_ref, lookup_key_fallback)
        if found is not None:
            drift.append(found)
        _every(progress, done, len(active), "active subscriptions")
    active_ids = {s.id for s in active}
    suspects = [
        (ref, [g for g in found if _live(g)])
        for ref, found in by_ref.items()
        if ref.startswith("sub_") and ref not in active_ids
    ]
    suspects = [(ref, live) for ref, live in suspects if live]
    for done, (ref, live) in enumerate(suspects, 1):
        found = _orphaned(stripe, ref, live)
        if found is not None:
            drift.append(found)
        _every(progress, done, len(suspects), "licensed groups of inactive subscriptions")
    return drift


def _unlicensed(
    stripe: StripeOpsAPI,
    storage: Storage,
    subscription: Subscription,
    by_ref: Mapping[str, list[EntitlementGroup]],
    lookup_key_fallback: bool,
) -> Drift | None:
    skus = _licensed_skus(subscription, lookup_key_fallback)
    if not skus:
        return None
    customer = subscription.customer_id
    linked = storage.get_customer_link(customer) if customer else None
    candidates = by_ref.get(subscription.id, [])
    if linked:
        candidates = [g for g in candidates if g.customer_id in (linked, None)]
    if any(_live(g) for g in candidates):
        return None
    if linked is None and customer:
        try:
            linked = stripe.retrieve_customer(customer).metadata.get(CUSTOMER_METADATA_KEY)
        except StripeAPIError:
            linked = None
    if candidates:
        what = f"its group(s) {', '.join(g.id for g in candidates)} have no live entitlement"
    elif linked:
        what = f"Zentitle2 customer {linked} has no group for it"
    else:
        what = "no Zentitle2 customer is linked to its Stripe customer and no group names it"
    return Drift(
        "unlicensed",
        subscription.id,
        f"active subscription {subscription.id} sells {', '.join(skus)} but {what}",
        "replay its latest invoice.paid event (zentitle-stripe events / replay), or "
        "reconcile with a --since that covers it",
        stripe_customer_id=customer,
        zentitle_customer_id=linked,
        group_ids=tuple(g.id for g in candidates),
    )


def _orphaned(stripe: StripeOpsAPI, ref: str, live: list[EntitlementGroup]) -> Drift | None:
    try:
        subscription = stripe.retrieve_subscription(ref)
    except StripeAPIError as exc:
        if exc.status != 404:
            raise
        state, customer = "does not exist in this Stripe account", None
    else:
        if subscription.status not in _ENDED_SUBSCRIPTION:
            return None
        state, customer = f"is {subscription.status}", subscription.customer_id
    return Drift(
        "orphaned",
        ref,
        f"subscription {ref} {state}, but group(s) {', '.join(g.id for g in live)} still "
        "have live entitlements",
        "replay its customer.subscription.deleted event, or disable the entitlements in Zentitle2",
        stripe_customer_id=customer,
        zentitle_customer_id=next((g.customer_id for g in live if g.customer_id), None),
        group_ids=tuple(g.id for g in live),
    )


# -- migrate ------------------------------------------------------------------------------


@attrs.frozen
class MigrateResult:
    """The storage and the schema version it now has (``None``: it keeps no schema)."""

    storage: str
    version: int | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def migrate_storage(storage: Storage) -> MigrateResult:
    """Create or upgrade the schema where the backend has one.

    PostgreSQL has ``migrate()`` (its servers are often started without DDL rights);
    SQLite creates its schema when opened, so there is nothing left to do.
    """
    from .storage import MemoryStorage

    migrate = getattr(storage, "migrate", None)
    if callable(migrate):
        version = int(migrate())
        return MigrateResult(repr(storage), version, "schema created or upgraded")
    from .storage.sqlite import SCHEMA_VERSION, SQLiteStorage

    if isinstance(storage, SQLiteStorage):
        return MigrateResult(repr(storage), SCHEMA_VERSION, "opening the file created the schema")
    if isinstance(storage, MemoryStorage):
        return MigrateResult(repr(storage), None, "memory storage keeps nothing to migrate")
    return MigrateResult(repr(storage), None, "this backend has no migrate(); nothing done")
