"""`doctor`: every check of the set-up, cheapest first, each with a fix.

The catalogue checks (Prices against offerings) live in
[`check_catalogue`][zentitle_stripe.ops.check_catalogue]; this module checks the
credentials, the webhook endpoint and its secret, and storage.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import attrs

from ..catalogue import MISSING_EVENT_CONSEQUENCES, missing_events
from ..exceptions import StripeAPIError, ZentitleAPIError, ZentitleStripeError
from ..policy import DEFAULT_POLICY, LifecyclePolicy
from ._common import Check, CheckStatus, Progress, quiet
from .hooks import check_hooks
from .prices import check_catalogue
from .worker import check_queue

if TYPE_CHECKING:
    from ..storage import Storage
    from ..stripe_api import StripeOpsAPI, WebhookEndpoint
    from ..zentitle import ZentitleAPI


@attrs.frozen
class DoctorReport:
    """Every check `doctor` ran, in order."""

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
    progress: Progress = quiet,
    policy: LifecyclePolicy | None = None,
) -> DoctorReport:
    """Run every check whose collaborators are available, cheapest first; the endpoint
    must send the lifecycle `policy`'s events (default: the default policy's).

    `raw_webhook_secret` is the unprocessed `STRIPE_WEBHOOK_SECRET` value, because the
    settings loader trims it and would hide the whitespace this looks for.
    """
    checks: list[Check] = []
    if configuration_error is not None:
        fix = "set the variable it names (see the configuration docs)"
        checks.append(Check("configuration", CheckStatus.FAIL, configuration_error, fix))
    checks.append(check_webhook_secrets(raw_webhook_secret))
    stripe_ok = zentitle_ok = False
    if stripe is not None:
        key = check_stripe_key(stripe)
        checks.append(key)
        stripe_ok = key.status is not CheckStatus.FAIL
        if stripe_ok:
            checks.append(check_webhook_endpoint(stripe, webhook_url, policy))
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
        queue = check_queue(storage, now=time.time())
        if queue is not None:
            checks.append(queue)
        hooks = check_hooks(storage)
        if hooks is not None:
            checks.append(hooks)
    return DoctorReport(tuple(checks))


def check_stripe_key(stripe: StripeOpsAPI) -> Check:
    """The key authenticates (`GET /v1/account`), and whether it is test or live."""
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
                "Subscriptions, Invoices, Events and Webhook endpoints (and Charges and "
                "Invoice payments when refunds or disputes disable), write access to "
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


def check_webhook_endpoint(
    stripe: StripeOpsAPI, url: str | None, policy: LifecyclePolicy | None = None
) -> Check:
    """An enabled endpoint for `url` sends every event the lifecycle `policy` acts on.

    A missing event fails, naming what would go wrong without it; events the policy does
    not act on are only mentioned (they are answered `ignored`).
    """
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
            _connect_fix(url),
        )
    return _endpoint_verdict(url, matches, (policy or DEFAULT_POLICY).events())


def _endpoint_verdict(url: str, matches: list[WebhookEndpoint], wanted: tuple[str, ...]) -> Check:
    """The verdict on the best of the endpoints registered for `url`."""
    name = "webhook endpoint"
    endpoint = min(
        matches,
        key=lambda e: (len(missing_events(e.enabled_events, wanted)), e.status != "enabled"),
    )
    problems = []
    missing = missing_events(endpoint.enabled_events, wanted)
    if missing:
        problems.append(
            "does not send " + ", ".join(f"{event} ({_consequence(event)})" for event in missing)
        )
    if endpoint.status != "enabled":
        problems.append(f"is {endpoint.status or 'not enabled'}")
    if problems:
        return Check(
            name,
            CheckStatus.FAIL,
            f"endpoint {endpoint.id} for {url} {' and '.join(problems)}",
            _connect_fix(url, " (subscribes it to the policy's events and enables it)"),
        )
    extra = f"; {len(matches)} endpoints have this URL, so events arrive twice" * (len(matches) > 1)
    return Check(
        name,
        CheckStatus.WARN if extra else CheckStatus.PASS,
        f"endpoint {endpoint.id} is enabled and sends {', '.join(wanted)} "
        f"(API version {endpoint.api_version or 'account default'}){_unused(endpoint, wanted)}"
        f"{extra}",
        "delete the duplicate endpoints in the Dashboard" if extra else None,
    )


def _consequence(event: str) -> str:
    return MISSING_EVENT_CONSEQUENCES.get(event, "the lifecycle policy acts on it")


def _unused(endpoint: WebhookEndpoint, wanted: tuple[str, ...]) -> str:
    """An informational note on events the endpoint sends that the policy ignores."""
    unused = [e for e in endpoint.enabled_events if e not in wanted]
    if not unused:
        return ""
    what = "every event type (*)" if unused == ["*"] else ", ".join(unused)
    return (
        f"; it also sends {what}, which this lifecycle policy does not act on (answered "
        "`ignored`; harmless, and `connect` removes them)"
    )


def _loose_url(url: str) -> str:
    return url.strip().rstrip("/").casefold()


def check_webhook_secrets(raw: str | None) -> Check:
    """Each signing secret is a bare `whsec_...` value: copy-paste often adds a newline
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
    """The credentials obtain a token and the tenant answers (`ZentitleAPI.ping`)."""
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


def _connect_fix(url: str, effect: str = "") -> str:
    """The `connect` to run, or, for a URL `connect` refuses (not https), what to do first."""
    if url.startswith("https://"):
        return f"run: zentitle-stripe connect --url {url}{effect}"
    return (
        "Stripe delivers webhooks only to https:// URLs, and connect refuses others: serve "
        "the endpoint over https (for a local app, through a tunnel such as ngrok or "
        "cloudflared, or `stripe listen --forward-to` for testing), then run: "
        "zentitle-stripe connect --url https://.../stripe/webhook"
    )


def check_storage(storage: Storage) -> Check:
    """The event store answers (`Storage.ping`)."""
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
