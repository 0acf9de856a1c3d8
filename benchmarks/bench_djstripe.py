"""Peer benchmark: dj-stripe's webhook view against ours, in one Django process each.

dj-stripe is not a dependency of this project (not even an extra): run it in a venv of
its own, from the repository root:

    python -m venv /tmp/venv-djstripe
    /tmp/venv-djstripe/bin/pip install 'dj-stripe==2.*' -e '.[django,postgres]'
    /tmp/venv-djstripe/bin/python benchmarks/bench_djstripe.py [--rounds 7] [--events 200] \
        [--databases sqlite postgresql://postgres@127.0.0.1:5432/test]

For each database (a child process each, as Django is configured once per process) it
builds a minimal Django project in a temp dir: dj-stripe's migrations, a dj-stripe
`WebhookEndpoint` (2.9+: the endpoint's own secret and a UUID URL,
`djstripe/webhook/<uuid>/`), created as dj-stripe's admin does (`WebhookEndpoint.create`
on the Stripe API, here the Stripe emulator in process, then synced), and
`zentitle_stripe.django`'s view at `zs/stripe/webhook` with a `Provisioner` on the same
database (SQLite: the same file; PostgreSQL: the same, fresh database). Both views get the
same signed bodies through Django's WSGI handler, called in process with the same
middleware; connections are persistent on both sides (`CONN_MAX_AGE`).

The events are `balance.available`, a type neither side acts on, so both do only what
every event costs: verify the signature, record the event, answer 200. dj-stripe keeps a
`WebhookEventTrigger` and an `Event` row (and, once per API key, the `Account`, fetched
before the timed rounds); ours records the event done as `ignored`. A duplicate is the
same body again: dj-stripe records another trigger and finds the `Event`; ours answers
`duplicate`. Rounds interleave the paths (each round posts one fresh batch to both
sides, then that batch again, alternating which side goes first); the figure is the best
round. No remote call is made in a timed round (checked).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

API_KEY = "sk_test_" + "benchmark" * 3
"""dj-stripe accepts only keys of 24 or more characters after the prefix."""
WARM_UP = 20
"""Events posted to each side before the timed rounds (imports, caches, the Account)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=200, help="events per batch")
    parser.add_argument(
        "--databases", nargs="+", default=["sqlite", "postgresql://postgres@127.0.0.1:5432/test"]
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.rounds, args.events)
    from importlib.metadata import version

    import django

    print(
        f"dj-stripe {version('dj-stripe')}, Django {django.__version__}, "
        f"zentitle-stripe {version('zentitle-stripe')}, Python {sys.version.split()[0]}"
    )
    for database in args.databases:
        command = [sys.executable, __file__, "--child", database]
        command += ["--rounds", str(args.rounds), "--events", str(args.events)]
        subprocess.run(command, check=True)  # noqa: S603 (this script)
    return 0


def child(database: str, rounds: int, events: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        if database == "sqlite":
            path = str(Path(tmp) / "db.sqlite3")
            django_db: dict[str, Any] = {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
            ours_url = f"sqlite:///{path}"
            run(database, django_db, ours_url, tmp, rounds, events)
        else:
            with fresh_database(database) as (django_db, ours_url):
                run("postgresql", django_db, ours_url, tmp, rounds, events)
    return 0


class fresh_database:
    """A new PostgreSQL database on the server of `url`, dropped afterwards."""

    def __init__(self, url: str) -> None:
        from urllib.parse import urlsplit

        self.url = url
        self.name = f"zs_djstripe_{uuid.uuid4().hex[:12]}"
        parts = urlsplit(url)
        self.django: dict[str, Any] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": self.name,
            "USER": parts.username or "postgres",
            "PASSWORD": parts.password or "",
            "HOST": parts.hostname or "127.0.0.1",
            "PORT": str(parts.port or 5432),
        }
        self.ours = parts._replace(path=f"/{self.name}").geturl()

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(statement)

    def __enter__(self) -> tuple[dict[str, Any], str]:
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self.django, self.ours

    def __exit__(self, *exc: object) -> None:
        from django.db import connections

        connections.close_all()
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def configure(django_db: dict[str, Any], tmp: str) -> None:
    """A minimal Django project: dj-stripe's app, both views, common middleware."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="bench_djstripe_urls",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "djstripe"],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
        DATABASES={"default": {**django_db, "CONN_MAX_AGE": None}},
        USE_TZ=True,
        STRIPE_LIVE_MODE=False,
        STRIPE_TEST_SECRET_KEY=API_KEY,
        DJSTRIPE_FOREIGN_KEY_TO_FIELD="id",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        STATIC_ROOT=tmp,
        LOGGING={"version": 1, "disable_existing_loggers": True},
    )
    django.setup()


def urlconf() -> None:
    from django.urls import include, path

    from zentitle_stripe.django import make_urlpatterns

    module = types.ModuleType("bench_djstripe_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("djstripe/", include("djstripe.urls", namespace="djstripe")),
        path("zs/", include(make_urlpatterns())),
    ]
    sys.modules[module.__name__] = module


def stripe_emulator() -> Any:
    """The Stripe emulator as the Stripe API of dj-stripe's stripe-python calls."""
    import stripe

    from zentitle_stripe.stripe._http import HTTPXClient
    from zentitle_stripe.testing import StripeEmulator

    emulator = StripeEmulator(api_key=API_KEY)
    stripe.api_base = "http://stripe.emulator"
    stripe.default_http_client = HTTPXClient(timeout=10.0, transport=emulator.transport())
    return emulator


def djstripe_endpoint() -> tuple[str, str]:
    """Create the endpoint as dj-stripe's admin does; returns its path and secret."""
    import stripe
    from django.apps import apps

    model = apps.get_model("djstripe", "WebhookEndpoint")
    endpoint_uuid = uuid.uuid4()
    created = stripe.WebhookEndpoint.create(
        api_key=API_KEY,
        url=f"https://example.com/djstripe/webhook/{endpoint_uuid}/",
        enabled_events=["*"],
        metadata={"djstripe_uuid": str(endpoint_uuid)},
    )
    endpoint = model.sync_from_stripe_data(created, api_key=API_KEY)
    assert str(endpoint.djstripe_uuid) == str(endpoint_uuid), "dj-stripe kept its own uuid"
    endpoint.secret = created["secret"]
    endpoint.save()
    return f"/djstripe/webhook/{endpoint_uuid}/", str(endpoint.secret)


Post = Callable[[bytes, str], int]


def wsgi_poster(path: str) -> Post:
    """POST a signed body to `path` through Django's WSGI handler, in process."""
    from django.core.handlers.wsgi import WSGIHandler

    app = WSGIHandler()

    def post(body: bytes, header: str) -> int:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "bench.example.com",
            "SERVER_PORT": "443",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "bench.example.com",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_STRIPE_SIGNATURE": header,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "https",
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        statuses: list[str] = []
        chunks = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        b"".join(chunks)
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        return int(statuses[0][:3])

    return post


def bodies(secret: str, count: int) -> list[tuple[bytes, str]]:
    """Fresh signed `balance.available` events (a type neither side acts on)."""
    from zentitle_stripe.testing import make_event, sign_stripe_payload

    balance: dict[str, Any] = {"object": "balance", "livemode": False}
    balance["available"] = [{"amount": 0, "currency": "usd"}]
    return [
        sign_stripe_payload(
            make_event("balance.available", balance, event_id=f"evt_{uuid.uuid4().hex[:24]}"),
            secret,
        )
        for _ in range(count)
    ]


def timed(post: Post, batch: Iterable[tuple[bytes, str]]) -> float:
    """Requests per second over `batch`; every answer must be 200."""
    batch = list(batch)
    started = time.perf_counter()
    for body, header in batch:
        status = post(body, header)
        if status != 200:
            raise SystemExit(f"answered {status}, expected 200: {body[:80]!r}")
    return len(batch) / (time.perf_counter() - started)


def run(name: str, django_db: dict[str, Any], ours_url: str, tmp: str, rounds: int, n: int) -> None:
    configure(django_db, tmp)
    urlconf()
    from django.core.management import call_command

    from zentitle_stripe import Provisioner
    from zentitle_stripe.django import set_provisioner
    from zentitle_stripe.storage import open_storage

    call_command("migrate", verbosity=0)
    emulator = stripe_emulator()
    djstripe_path, secret = djstripe_endpoint()
    storage = open_storage(ours_url)
    provisioner = Provisioner(webhook_secrets=[secret], storage=storage)
    set_provisioner(provisioner)
    posters = {"ours": wsgi_poster("/zs/stripe/webhook"), "dj-stripe": wsgi_poster(djstripe_path)}
    for post in posters.values():  # warm-up: imports, caches, dj-stripe's Account fetch
        timed(post, bodies(secret, WARM_UP))
    calls_before = len(emulator.requests)
    figures: dict[tuple[str, str], list[float]] = {}
    for round_number in range(rounds):
        batch = bodies(secret, n)
        order = list(posters) if round_number % 2 == 0 else list(reversed(posters))
        for kind in ("first-seen", "duplicate"):
            for side in order:
                figures.setdefault((kind, side), []).append(timed(posters[side], batch))
    assert len(emulator.requests) == calls_before, "a timed round called the Stripe API"
    check_recorded(storage, WARM_UP + rounds * n, rounds * n)
    report(name, figures, rounds, n)
    set_provisioner(None)
    provisioner.close()


def check_recorded(storage: Any, expected: int, duplicates: int) -> None:
    """Both sides recorded every distinct event once, and dj-stripe every delivery."""
    from django.apps import apps

    events = apps.get_model("djstripe", "Event").objects.count()
    triggers = apps.get_model("djstripe", "WebhookEventTrigger").objects
    valid = triggers.filter(valid=True, processed=True).count()
    ours = len(storage.list_events(limit=10 * expected))
    print(f"recorded: dj-stripe {events} events from {valid} valid triggers, ours {ours} events")
    assert events == ours == expected, (events, ours, expected)
    assert valid == expected + duplicates, valid


def report(name: str, figures: dict[tuple[str, str], list[float]], rounds: int, n: int) -> None:
    print(f"\n{name}: {rounds} interleaved rounds of {n} events per path (requests/s)")
    print(
        f"{'path':<11} {'ours best':>10} {'dj-stripe best':>15} {'ratio best':>11} "
        f"{'ratio median':>13}"
    )
    for kind in ("first-seen", "duplicate"):
        ours, peer = figures[(kind, "ours")], figures[(kind, "dj-stripe")]
        ratio_best = max(ours) / max(peer)
        ratio_median = statistics.median(ours) / statistics.median(peer)
        print(
            f"{kind:<11} {max(ours):>10.0f} {max(peer):>15.0f} {ratio_best:>10.1f}x "
            f"{ratio_median:>12.1f}x"
        )
    print(json.dumps({f"{k}/{s}": round(max(v)) for (k, s), v in figures.items()}))


if __name__ == "__main__":
    sys.exit(main())
