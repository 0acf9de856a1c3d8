"""The README keeps its promises: its embedding example provisions a licence end to end,
and its two set-up commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import ROOT, ExampleEnv

README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_embedding_example_provisions_a_licence_end_to_end(
    served_example_env: ExampleEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("flask")
    (example,) = _blocks("python")
    assert len(example.strip().splitlines()) <= 20
    path = tmp_path / "readme_app.py"
    path.write_text(example)
    story, load = served_example_env
    client = load(path).app.test_client()

    subscription_id, paid = story.first_subscription()
    body, header = story.stripe.sign(paid)
    response = client.post("/stripe/webhook", data=body, headers={"Stripe-Signature": header})
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "provisioned"
    (group,) = story.zentitle.groups(order_ref_id=subscription_id)
    codes = story.stripe.subscription(subscription_id)["metadata"]["activation_codes"]
    assert codes == ",".join(group.activation_codes)

    (webhook,) = story.zentitle.outbox
    response = client.post("/zentitle/webhook", data=webhook.body, headers=dict(webhook.headers))
    assert response.get_json()["outcome"] == "handled"
    assert f"your activation codes are {codes}" in capsys.readouterr().out


def test_the_two_commands_are_what_ci_runs() -> None:
    demo_command, test_command = (block.strip() for block in _blocks("bash"))
    assert demo_command == "pip install -e '.[server]' && zentitle-stripe demo"
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()
