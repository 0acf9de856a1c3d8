"""What only the Flask adapter has: a Blueprint, named as you choose.

The scenarios every adapter shares are in `test_adapters.py`.
"""

from __future__ import annotations

import pytest

from tests.support import subscribe_two
from zentitle_stripe.testing import EmulatedWorld

pytest.importorskip("flask")

from flask import Flask

from zentitle_stripe.flask import init_app, make_blueprint


def test_paths_and_blueprint_name_are_configurable(world: EmulatedWorld) -> None:
    app = Flask(__name__)
    app.register_blueprint(
        make_blueprint(
            world.provisioner, stripe_path="/hooks/s", zentitle_path="/hooks/z", name="b"
        )
    )
    client = app.test_client()
    _, paid = subscribe_two(world)
    body, header = world.stripe_emulator.sign(paid)
    assert (
        client.post("/hooks/s", data=body, headers={"Stripe-Signature": header}).status_code == 200
    )
    assert "b.stripe_webhook" in app.view_functions
    assert "b.zentitle_webhook" in app.view_functions


def test_init_app_registers_and_returns_the_blueprint(world: EmulatedWorld) -> None:
    app = Flask(__name__)
    blueprint = init_app(app, world.provisioner, name="billing")
    assert app.blueprints == {"billing": blueprint}
