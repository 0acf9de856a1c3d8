"""Settings from the environment, validated up front, with every secret masked.

Settings that are missing or malformed raise one
[`ConfigurationError`][zentitle_stripe.exceptions.ConfigurationError] naming every such
variable and what it should look like, at start-up rather than on the first webhook (a
blank set-up is one round of fixes, not seven).
"""

from __future__ import annotations

import hmac
import math
import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Literal, TypeVar

import attrs

from ._envfile import merged_environ
from ._untrusted import finite_number
from .exceptions import ConfigurationError
from .policy import DEFAULT_POLICY, LifecyclePolicy
from .signature import DEFAULT_TOLERANCE
from .storage import DEFAULT_STORAGE_URL, check_storage_url, redact_url

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Processing", "SeatPolicy", "Secret", "Settings"]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_N = TypeVar("_N", int, float)

SeatPolicy = Literal["multiply", "offering"]
"""`multiply`: quantity N gives N times the offering's seats; `offering`: as offered."""

Processing = Literal["sync", "queue"]
"""`sync`: `handle_event` does the work before answering; `queue`: it records the event
and answers 200 at once, and `zentitle-stripe worker` does the work."""


class Secret:
    """A string that never shows itself in `repr`, `str`, logs or tracebacks.

    Call [`reveal`][zentitle_stripe.config.Secret.reveal] where the value is really needed.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: call it only where the value is sent or compared."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


def _url_repr(url: str) -> str:
    return repr(redact_url(url))


def _finite(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """Refuse `nan`, `inf` and negative numbers (zero too, except for the tolerance)."""
    finite_number(value, f"Settings.{attribute.name}", positive=attribute.name != "tolerance")


@attrs.frozen
class Settings:
    """Everything [`Provisioner.from_env`][zentitle_stripe.Provisioner.from_env] needs.
    `repr()` shows no secret."""

    stripe_api_key: Secret
    webhook_secrets: tuple[Secret, ...]
    zentitle_api_url: str
    zentitle_token_url: str
    zentitle_tenant_id: str
    zentitle_client_id: str
    zentitle_client_secret: Secret
    stripe_api_base: str | None = None
    zentitle_webhook_public_key: str | None = attrs.field(default=None, repr=False)
    zentitle_api_version: str = "2025-10-10"
    storage_url: str = attrs.field(default=DEFAULT_STORAGE_URL, repr=_url_repr)
    tolerance: float = attrs.field(default=DEFAULT_TOLERANCE, validator=_finite)
    max_body_bytes: int = attrs.field(default=DEFAULT_MAX_BODY_BYTES, validator=_finite)
    lease_seconds: float = attrs.field(default=120.0, validator=_finite)
    config_error_status: int = 422
    lookup_key_fallback: bool = False
    seat_policy: SeatPolicy = "multiply"
    http_timeout: float = attrs.field(default=10.0, validator=_finite)
    create_window: float = attrs.field(default=60.0, validator=_finite)
    processing: Processing = "sync"
    lifecycle: LifecyclePolicy = DEFAULT_POLICY

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | os.PathLike[str] | None = None,
    ) -> Settings:
        """Read and validate the settings (`os.environ` when `environ` is `None`).

        Required: `STRIPE_API_KEY`, `STRIPE_WEBHOOK_SECRET` (comma-separated while
        rotating), `ZENTITLE_API_URL`, `ZENTITLE_TOKEN_URL`, `ZENTITLE_TENANT_ID`,
        `ZENTITLE_CLIENT_ID`, `ZENTITLE_CLIENT_SECRET`. Optional: `STRIPE_API_BASE`,
        `ZENTITLE_STRIPE_STORAGE`, `ZENTITLE_WEBHOOK_PUBLIC_KEY`, `ZENTITLE_API_VERSION`,
        and the `ZENTITLE_STRIPE_*` tuning knobs listed in the docs. `env_file` names a
        `.env` file read as well; a variable set in the environment wins over the file.
        Every missing or malformed variable is reported in one `ConfigurationError`.
        """
        env = merged_environ(env_file, environ)
        read = _Reader(env)
        api_key = _api_key(read)
        secrets = _webhook_secrets(read)
        config_error_status = read.integer("ZENTITLE_STRIPE_CONFIG_ERROR_STATUS", 422)
        if config_error_status not in (200, 422):
            read.problem("ZENTITLE_STRIPE_CONFIG_ERROR_STATUS must be 422 (default) or 200")
        seat_policy = env.get("ZENTITLE_STRIPE_SEAT_POLICY", "multiply").strip() or "multiply"
        if seat_policy not in ("multiply", "offering"):
            read.problem(
                "ZENTITLE_STRIPE_SEAT_POLICY must be 'multiply' (quantity x offering seats) "
                "or 'offering' (the offering's seats as they are)"
            )
        fields: dict[str, Any] = {
            "stripe_api_key": Secret(api_key),
            "webhook_secrets": tuple(Secret(s) for s in secrets),
            "stripe_api_base": read.optional_url("STRIPE_API_BASE"),
            "zentitle_api_url": read.url("ZENTITLE_API_URL"),
            "zentitle_token_url": read.url("ZENTITLE_TOKEN_URL"),
            "zentitle_tenant_id": read.required("ZENTITLE_TENANT_ID"),
            "zentitle_client_id": read.required("ZENTITLE_CLIENT_ID"),
            "zentitle_client_secret": Secret(read.required("ZENTITLE_CLIENT_SECRET")),
            "zentitle_webhook_public_key": env.get("ZENTITLE_WEBHOOK_PUBLIC_KEY", "").strip()
            or None,
            "zentitle_api_version": env.get("ZENTITLE_API_VERSION", "").strip() or "2025-10-10",
            "storage_url": env.get("ZENTITLE_STRIPE_STORAGE", "").strip() or DEFAULT_STORAGE_URL,
            "tolerance": read.number("ZENTITLE_STRIPE_TOLERANCE", DEFAULT_TOLERANCE),
            "max_body_bytes": read.integer(
                "ZENTITLE_STRIPE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES
            ),
            "lease_seconds": read.number("ZENTITLE_STRIPE_LEASE_SECONDS", 120.0, positive=True),
            "config_error_status": config_error_status,
            "lookup_key_fallback": read.boolean("ZENTITLE_STRIPE_LOOKUP_KEY_FALLBACK", False),
            "seat_policy": "offering" if seat_policy == "offering" else "multiply",
            "http_timeout": read.number("ZENTITLE_STRIPE_HTTP_TIMEOUT", 10.0, positive=True),
            "create_window": read.number("ZENTITLE_STRIPE_CREATE_WINDOW", 60.0, positive=True),
        }
        _checked_storage_and_mode(read, env, fields)
        fields["lifecycle"] = _lifecycle(read, env)
        read.raise_problems()
        return cls(**fields)


def _checked_storage_and_mode(
    read: _Reader, env: Mapping[str, str], fields: dict[str, Any]
) -> None:
    """Add the storage URL's and processing mode's problems to `read`'s list."""
    try:
        check_storage_url(fields["storage_url"])
    except ConfigurationError as exc:
        read.problem(str(exc))
    try:
        fields["processing"] = _processing(env)
    except ConfigurationError as exc:
        read.problem(str(exc))


def stripe_connection(environ: Mapping[str, str]) -> tuple[Secret, str | None, float]:
    """Only what talking to Stripe needs (key, API base, timeout), validated as `from_env`
    does: `connect` runs before there is a webhook secret or any Zentitle2 setting."""
    read = _Reader(environ)
    api_key = _api_key(read)
    api_base = read.optional_url("STRIPE_API_BASE")
    timeout = read.number("ZENTITLE_STRIPE_HTTP_TIMEOUT", 10.0, positive=True)
    read.raise_problems()
    return Secret(api_key), api_base, timeout


def _api_key(read: _Reader) -> str:
    """`STRIPE_API_KEY`, with the likely mix-up named: a webhook secret or publishable key."""
    api_key = read.required("STRIPE_API_KEY")
    if not api_key or api_key.startswith(("sk_", "rk_")):
        return api_key
    if api_key.startswith("whsec_"):
        read.problem(
            "STRIPE_API_KEY holds a webhook signing secret (whsec_...): that value belongs in "
            "STRIPE_WEBHOOK_SECRET; STRIPE_API_KEY takes a secret or restricted key "
            "(sk_... or rk_...) from Dashboard > Developers > API keys"
        )
    elif api_key.startswith("pk_"):
        read.problem(
            "STRIPE_API_KEY holds a publishable key (pk_...), which cannot read payments: "
            "use a secret or restricted key (sk_... or rk_...)"
        )
    else:
        read.problem(
            "STRIPE_API_KEY must be a secret or restricted key (sk_... or rk_...); "
            "the value set is neither (not shown)"
        )
    return api_key


def _webhook_secrets(read: _Reader) -> tuple[str, ...]:
    text = read.required("STRIPE_WEBHOOK_SECRET")
    if not text:
        return ()
    secrets = tuple(s.strip() for s in text.split(","))
    for index, secret in enumerate(secrets, 1):
        if secret.startswith(("sk_", "rk_")):
            read.problem(
                f"STRIPE_WEBHOOK_SECRET entry {index} is an API key (sk_/rk_...): that belongs "
                "in STRIPE_API_KEY; the webhook signing secret starts with whsec_"
            )
        elif not secret.startswith("whsec_"):
            read.problem(
                f"STRIPE_WEBHOOK_SECRET entry {index} does not look like a webhook signing "
                "secret (whsec_...); copy it from the endpoint's page in the Stripe Dashboard"
            )
    return secrets


def _processing(env: Mapping[str, str]) -> Processing:
    mode = env.get("ZENTITLE_STRIPE_MODE", "sync").strip().lower() or "sync"
    if mode not in ("sync", "queue"):
        raise ConfigurationError(
            "ZENTITLE_STRIPE_MODE must be 'sync' (default: work done before answering) "
            "or 'queue' (answer at once; `zentitle-stripe worker` does the work)"
        )
    return "queue" if mode == "queue" else "sync"


_LIFECYCLE_CHOICES = {
    "ZENTITLE_STRIPE_TRIAL": ("trial", ("grant", "wait")),
    "ZENTITLE_STRIPE_ON_PAUSE": ("pause", ("disable", "ignore")),
    "ZENTITLE_STRIPE_ON_REFUND": ("refund", ("disable", "ignore")),
    "ZENTITLE_STRIPE_ON_DISPUTE": ("dispute", ("disable", "ignore")),
}


def lifecycle_from_env(environ: Mapping[str, str]) -> LifecyclePolicy:
    """Only the lifecycle policy, validated as `from_env` does: `connect` subscribes the
    endpoint to its events before any other setting exists."""
    read = _Reader(environ)
    policy = _lifecycle(read, environ)
    read.raise_problems()
    return policy


def _lifecycle(read: _Reader, env: Mapping[str, str]) -> LifecyclePolicy:
    """The [`LifecyclePolicy`][zentitle_stripe.policy.LifecyclePolicy] from its variables."""
    options: dict[str, Any] = {}
    for name, (field, allowed) in _LIFECYCLE_CHOICES.items():
        value = env.get(name, "").strip().lower()
        if value and value not in allowed:
            read.problem(f"{name} must be {' or '.join(map(repr, allowed))}, got {value!r}")
        elif value:
            options[field] = value
    days = read.number("ZENTITLE_STRIPE_PAST_DUE_GRACE_DAYS", -1.0)
    if days >= 0:
        options["past_due_grace"] = timedelta(days=days)
    return LifecyclePolicy(**options)


class _Reader:
    """Typed reads of environment variables with errors that name the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def problem(self, message: str) -> None:
        """Note one problem; reading goes on so that every problem is reported at once."""
        self.problems.append(message)

    def raise_problems(self) -> None:
        """One `ConfigurationError` naming every problem noted, if any."""
        if len(self.problems) == 1:
            raise ConfigurationError(self.problems[0])
        if self.problems:
            listed = "\n".join(f"  - {p}" for p in self.problems)
            raise ConfigurationError(
                f"{len(self.problems)} configuration problems (see the configuration docs):\n"
                + listed,
                problems=tuple(self.problems),
            )

    def required(self, name: str) -> str:
        value = self.env.get(name, "").strip()
        if not value:
            self.problem(f"{name} is not set; see the configuration docs")
        return value

    def url(self, name: str) -> str:
        value = self.required(name)
        if value and not value.lower().startswith(("https://", "http://")):
            self.problem(f"{name} must be an http(s):// URL, got {value!r}")
        return value.rstrip("/")

    def optional_url(self, name: str) -> str | None:
        return self.url(name) if self.env.get(name, "").strip() else None

    def number(self, name: str, default: float, *, positive: bool = False) -> float:
        text, value = self._parsed(name, float, "a number")
        if value is None:
            return default
        if not math.isfinite(value):  # nan passes every comparison: it would disable a limit
            self.problem(
                f"{name} must be a finite number of seconds, got {text!r} (nan and inf are refused)"
            )
            return default
        if value < 0 or (positive and value == 0):
            rule = "must be positive" if positive else "must not be negative"
            self.problem(f"{name} {rule}, got {text!r}")
            return default
        return value

    def integer(self, name: str, default: int) -> int:
        text, value = self._parsed(name, int, "a whole number")
        if value is None:
            return default
        if value <= 0:
            self.problem(f"{name} must be positive, got {text!r}")
            return default
        return value

    def _parsed(self, name: str, parse: Callable[[str], _N], what: str) -> tuple[str, _N | None]:
        """The variable's text and its value (`None` when unset); unparsable text raises."""
        text = self.env.get(name, "").strip()
        if not text:
            return text, None
        try:
            if not text.isascii():  # int() and float() also read other scripts' digits
                raise ValueError(text)
            return text, parse(text)
        except ValueError:
            self.problem(f"{name} must be {what} in ASCII digits, got {text!r}")
            return text, None

    def boolean(self, name: str, default: bool) -> bool:
        text = self.env.get(name, "").strip().lower()
        if not text:
            return default
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        self.problem(f"{name} must be true or false, got {text!r}")
        return default
