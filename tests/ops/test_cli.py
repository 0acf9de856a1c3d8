"""The operations commands end to end: ``cli.main`` with the environment pointing at both
emulators served on loopback (`tests.support.cli`), output captured."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Env, served_env
from zentitle_stripe.cli import main
from zentitle_stripe.policy import DEFAULT_POLICY
from zentitle_stripe.storage.sqlite import SCHEMA_VERSION

URL = "https://licences.example.com/stripe/webhook"


@pytest.fixture
def env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    with served_env(tmp_path, capsys, monkeypatch) as served:
        yield served


@pytest.mark.parametrize(
    "command",
    ["doctor", "connect", "events", "hooks", "replay", "reconcile", "release", "migrate"],
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--json" in capsys.readouterr().out


def test_doctor_green_path(env: Env) -> None:
    env.offering("PRO-1Y")
    env.price("PRO-1Y")
    assert env.run("connect", "--url", URL)[0] == 0

    code, report = env.run_json("doctor", "--url", URL)

    assert code == 0, report
    assert report["ok"] is True
    assert {c["status"] for c in report["checks"]} == {"PASS"}
    code, out, err = env.run("doctor", "--url", URL)
    assert code == 0
    assert out.splitlines()[0].startswith("PASS  webhook signing secret: 1 secret(s)")
    assert "checked 1/1 prices" in err


def test_doctor_reports_every_failure_with_a_fix(env: Env) -> None:
    env.offering("PRO-1Y")
    env.offering("ACT-1Y", license_start_type="activation")
    near = env.price("pro-1y")
    on_product = env.price("PRO-1Y", on_product=True)
    wrong_start = env.price("ACT-1Y")
    env.monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", env.stripe.webhook_secret + "\n")
    env.monkeypatch.setenv("ZENTITLE_STRIPE_WEBHOOK_URL", URL)

    code, out, _ = env.run("doctor")

    assert code == 1
    lines = out.splitlines()
    assert "FAIL  webhook signing secret: the secret has a trailing newline" in lines
    assert f"FAIL  webhook endpoint: no webhook endpoint for {URL}" in lines
    assert f"      fix: run: zentitle-stripe connect --url {URL}" in lines
    assert (
        f"FAIL  price {near}: {near} has offering_sku 'pro-1y'; Zentitle2 has 'PRO-1Y' "
        "(SKUs match exactly, case-sensitively)"
    ) in lines
    assert any(
        line.startswith(f"FAIL  price {on_product}: offering_sku 'PRO-1Y' is on") for line in lines
    )
    assert any(line.startswith(f"FAIL  price {wrong_start}: offering 'ACT-1Y'") for line in lines)
    assert "whsec_emulator" not in out


def test_doctor_fails_bad_zentitle_credentials(env: Env) -> None:
    env.monkeypatch.setenv("ZENTITLE_CLIENT_SECRET", "wrong")

    code, report = env.run_json("doctor", "--url", URL)

    assert code == 1
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["Zentitle2"]["status"] == "FAIL"
    assert "ZENTITLE_CLIENT_SECRET" in checks["Zentitle2"]["fix"]
    assert checks["catalogue"]["status"] == "WARN"
    assert "wrong" not in json.dumps(report)


def test_doctor_reports_missing_configuration(env: Env) -> None:
    env.monkeypatch.delenv("STRIPE_API_KEY")

    code, report = env.run_json("doctor")

    assert code == 2  # bad configuration, as docs/operations.md says
    assert report["checks"][0]["name"] == "configuration"
    assert "STRIPE_API_KEY" in report["checks"][0]["detail"]


def test_doctor_strict_fails_on_warnings(env: Env) -> None:
    # No URL and no licensed price: warnings only.
    assert env.run("doctor")[0] == 0
    assert env.run("doctor", "--strict")[0] == 1


def test_connect_prints_the_secret_once(env: Env) -> None:
    code, out, err = env.run("connect", "--url", URL)
    assert code == 0
    secret = out.splitlines()[-1]
    assert secret.startswith("whsec_")
    assert secret not in err

    code, data = env.run_json("connect", "--url", URL)
    assert code == 0
    assert data["action"] == "reused"
    assert data["secret"] is None
    assert any("Roll secret" in note for note in data["notes"])


def test_connect_writes_the_secret_to_a_private_file(env: Env, tmp_path: Path) -> None:
    target = tmp_path / "prod.env"

    code, data = env.run_json("connect", "--url", URL, "--write-env", str(target))

    assert code == 0
    assert data["secret"] is None
    assert data["written_to"] == str(target)
    assert data["enabled_events"] == list(DEFAULT_POLICY.events())
    assert data["api_version"] == "2026-10-28.endive"
    assert target.read_text().startswith("STRIPE_WEBHOOK_SECRET=whsec_")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600

    code, out, _ = env.run("connect", "--url", URL, "--write-env", str(target))
    assert code == 0
    assert "not changed" in out


def test_connect_rejects_plain_http(env: Env) -> None:
    code, _, err = env.run("connect", "--url", "http://example.com/hook")
    assert code == 2
    assert "https" in err


def test_reconcile_events_and_replay(env: Env) -> None:
    env.offering("PRO-1Y")
    subscription, paid = env.subscribe("PRO-1Y")
    _, broken = env.subscribe("NOPE")

    code, report = env.run_json("reconcile", "--since", "72h")

    assert code == 1
    outcomes = {e["event_id"]: (e["status"], e["outcome"]) for e in report["events"]}
    assert outcomes == {paid["id"]: (200, "provisioned"), broken["id"]: (422, "failed")}
    [drift] = report["drift"]
    assert drift["kind"] == "unlicensed"
    assert drift["subscription_id"] != subscription
    assert env.zentitle.groups(order_ref_id=subscription)

    code, events = env.run_json("events", "--status", "failed")
    assert code == 0
    assert [e["event_id"] for e in events] == [broken["id"]]
    code, out, _ = env.run("events", "--source", "stripe", "--limit", "5")
    assert code == 0
    assert len(out.splitlines()) == 3  # the header row and two events

    code, results = env.run_json("replay", "--failed")
    assert code == 1
    assert [(r["event_id"], r["status"]) for r in results] == [(broken["id"], 422)]

    env.offering("NOPE")
    code, out, _ = env.run("replay", broken["id"])
    assert code == 0
    assert out.startswith(f"200  stripe {broken['id']}  provisioned")
    code, out, _ = env.run("replay", "--failed")
    assert (code, out) == (0, "no failed events to replay\n")

    code, out, _ = env.run("reconcile", "--since", "60d")
    assert code == 0
    assert "2 found, 2 already done, 0 processed, 0 failed" in out
    assert "drift: 0 problem(s)" in out


def test_reconcile_warns_when_clamped(env: Env) -> None:
    code, _, err = env.run("reconcile", "--since", "45d", "--no-drift")
    assert code == 0
    assert "looking back 30 days only" in err


def test_replay_of_an_unknown_event_fails(env: Env) -> None:
    code, out, _ = env.run("replay", "evt_unknown")
    assert code == 1
    assert out.startswith("404  stripe evt_unknown  failed")


def test_bad_durations_and_limits_are_usage_errors(env: Env) -> None:
    for argv in (["reconcile", "--since", "3 days"], ["events", "--limit", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2


def test_migrate_prints_the_schema_version(env: Env) -> None:
    code, data = env.run_json("migrate")
    assert code == 0
    assert data["version"] == SCHEMA_VERSION
    code, out, _ = env.run("migrate")
    assert f"schema version {SCHEMA_VERSION}" in out

    env.monkeypatch.setenv("ZENTITLE_STRIPE_STORAGE", "memory://")
    assert env.run_json("migrate") == (0, env.run_json("migrate")[1])
    assert env.run_json("migrate")[1]["version"] is None
