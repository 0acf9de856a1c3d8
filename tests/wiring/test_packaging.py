"""The core imports no optional dependency; the package ships its type information."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import zentitle_stripe

OPTIONAL = (
    "flask",
    "fastapi",
    "django",
    "starlette",
    "uvicorn",
    "psycopg",
    "psycopg_pool",
    "pytest",
)


def test_importing_the_core_and_testing_pulls_in_no_optional_dependency() -> None:
    code = (
        "import sys, zentitle_stripe, zentitle_stripe.testing, zentitle_stripe.cli;"
        f"loaded = sorted(m for m in {OPTIONAL!r} if m in sys.modules);"
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def test_package_is_typed() -> None:
    assert (Path(zentitle_stripe.__file__).parent / "py.typed").exists()


def test_public_api_names() -> None:
    for name in ("Provisioner", "WebhookResponse", "Outcome", "OutcomeKind", "Settings"):
        assert name in zentitle_stripe.__all__
    assert zentitle_stripe.__version__
