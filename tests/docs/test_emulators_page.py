"""The page "Use the emulators in your own tests and app": its served-emulators example
passes under pytest as a user runs it, and the credentials it states are the emulators'."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import EXAMPLES
from zentitle_stripe.testing import EmulatedWorld, StripeEmulator, ZentitleEmulator

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "emulators.md").read_text("utf-8")


def test_the_page_is_in_the_nav_and_includes_both_examples() -> None:
    assert "emulators.md" in (ROOT / "mkdocs.yml").read_text("utf-8")
    assert '--8<-- "docs/examples/test_served_emulators.py"' in PAGE
    assert '--8<-- "docs/examples/test_with_emulators.py"' in PAGE


def test_the_stated_credentials_are_the_emulators_defaults() -> None:
    stripe, zentitle = StripeEmulator(), ZentitleEmulator()
    for value in (
        stripe.api_key,
        stripe.webhook_secret,
        zentitle.tenant_id,
        zentitle.client_id,
        zentitle.client_secret,
        zentitle.api_version,
        f"valid {zentitle.token_lifetime} s",
        f"curl -u {stripe.api_key}:",
    ):
        assert value in PAGE, value
    token_path = zentitle.token_url_for("{api_url}")
    assert f"`POST {token_path}`" in PAGE
    world = EmulatedWorld()
    try:
        environ = world.environ("http://z", "http://s", "/data")
    finally:
        world.close()
    for name in environ:
        assert f"`{name}`" in PAGE, f"{name} is not in the page's table"


def test_the_served_example_passes_under_pytest() -> None:
    example = EXAMPLES / "test_served_emulators.py"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(example)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=EXAMPLES,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
