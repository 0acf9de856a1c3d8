"""Finding the test PostgreSQL server and giving each test a fresh schema.

Shared by the storage and stress tests. Without a server (or psycopg) the tests are
skipped with a note saying how to enable them; ``ZENTITLE_STRIPE_REQUIRE_POSTGRES=1``
(set by CI) turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn
from urllib.parse import quote

import pytest

from zentitle_stripe.storage import redact_url

HOW = (
    "start PostgreSQL or set ZENTITLE_STRIPE_TEST_POSTGRES=postgresql://... "
    "(ZENTITLE_STRIPE_REQUIRE_POSTGRES=1 turns this skip into a failure)"
)


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("ZENTITLE_STRIPE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required but {reason}", pytrace=False)
    pytest.skip(f"{reason}: {HOW}", allow_module_level=True)


def find_server() -> str:
    """The first PostgreSQL URL that answers, or skip (fail when required)."""
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (extra 'postgres')")
    configured = os.environ.get("ZENTITLE_STRIPE_TEST_POSTGRES")
    candidates = (
        [configured]
        if configured
        else ["postgresql://postgres@127.0.0.1:5432/test", "postgresql:///test"]
    )
    errors = []
    for url in candidates:
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            errors.append(f"{redact_url(url)}: {' '.join(str(exc).split())}")
            continue
        return url
    unavailable("no PostgreSQL server answered (" + "; ".join(errors) + ")")


def create_schema(server: str, prefix: str = "zs_test") -> str:
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    return name


def drop_schema(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections see only ``schema`` (libpq ``options`` parameter)."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-c search_path={schema}')}"


@contextmanager
def fresh_schema(server: str, prefix: str = "zs_test") -> Iterator[str]:
    """A URL pointing at a new, empty schema, dropped afterwards."""
    name = create_schema(server, prefix)
    try:
        yield with_search_path(server, name)
    finally:
        drop_schema(server, name)
