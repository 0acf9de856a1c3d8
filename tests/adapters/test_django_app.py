"""The Django app: system checks that fail `manage.py check` on a broken configuration,
`manage.py zentitle_stripe ...` reading `settings.ZENTITLE_STRIPE`, the plain CLI's
`--django-settings`, and the read-only events page."""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import configure_django, django_urls
from tests.support.cli import Env, served_env

pytest.importorskip("django")
configure_django()

from django.apps import apps  # noqa: E402
from django.core.checks import run_checks  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.management.base import SystemCheckError  # noqa: E402
from django.test import Client, RequestFactory, override_settings  # noqa: E402

from zentitle_stripe.django import set_provisioner  # noqa: E402
from zentitle_stripe.django.admin_views import events_view  # noqa: E402
from zentitle_stripe.django.apps import ZentitleStripeConfig  # noqa: E402
from zentitle_stripe.storage import NewEvent, open_storage  # noqa: E402
from zentitle_stripe.testing import EmulatedWorld  # noqa: E402

CONFIG = {
    "STRIPE_API_KEY": "sk_test_django",
    "STRIPE_WEBHOOK_SECRET": "whsec_django",
    "ZENTITLE_API_URL": "https://api.zentitle.invalid",
    "ZENTITLE_TOKEN_URL": "https://auth.zentitle.invalid/token",
    "ZENTITLE_TENANT_ID": "t_1",
    "ZENTITLE_CLIENT_ID": "c_1",
    "ZENTITLE_CLIENT_SECRET": "s_1",
    "ZENTITLE_STRIPE_STORAGE": "sqlite:///unused.db",
}


def _ids(config: dict[str, Any] | None) -> list[str]:
    with override_settings(ZENTITLE_STRIPE=config):
        return sorted(m.id or "" for m in run_checks(tags=["zentitle_stripe"]))


@pytest.fixture(autouse=True)
def _shipped_urls() -> Iterator[None]:
    with django_urls("zentitle_stripe.django.urls"):
        yield
    set_provisioner(None)


def test_the_app_is_installed_by_its_package_name() -> None:
    assert isinstance(apps.get_app_config("zentitle_stripe"), ZentitleStripeConfig)


def test_a_good_configuration_passes_the_checks() -> None:
    assert _ids(CONFIG) == []


def test_missing_settings_are_errors_each_with_its_id() -> None:
    config = {k: v for k, v in CONFIG.items() if k.startswith("ZENTITLE_STRIPE")}
    config["ZENTITLE_STRIPE_STORAGE"] = "redis://cache"
    ids = _ids(config)
    assert "zentitle_stripe.E001" in ids  # the webhook signing secret
    assert "zentitle_stripe.E002" in ids  # the API key
    assert "zentitle_stripe.E003" in ids  # the storage
    assert ids.count("zentitle_stripe.E004") == 5  # every Zentitle2 setting, at once


def test_manage_py_check_fails_on_a_broken_configuration() -> None:
    broken = {**CONFIG, "STRIPE_API_KEY": "whsec_oops"}
    with (
        override_settings(ZENTITLE_STRIPE=broken),
        pytest.raises(SystemCheckError, match="webhook signing secret"),
    ):
        call_command("check")


def test_risky_values_are_warnings() -> None:
    ids = _ids({**CONFIG, "ZENTITLE_STRIPE_TOLERANCE": "0", "ZENTITLE_STRIPE_STORAGE": "memory://"})
    assert ids == ["zentitle_stripe.W001", "zentitle_stripe.W002"]
    with override_settings(ZENTITLE_STRIPE="not a dict"):
        assert [m.id for m in run_checks(tags=["zentitle_stripe"])] == ["zentitle_stripe.E006"]


def test_unrouted_views_and_a_provisioner_without_handlers_are_warnings() -> None:
    urlconf = types.ModuleType("no_webhooks")
    urlconf.urlpatterns = []  # type: ignore[attr-defined]
    with django_urls(urlconf):
        assert _ids(CONFIG) == ["zentitle_stripe.W003"]
    world = EmulatedWorld()
    set_provisioner(world.provisioner)
    assert _ids(CONFIG) == ["zentitle_stripe.W004"]
    world.provisioner.on_zentitle("entitlement.group.created")(lambda event: None)
    assert _ids(CONFIG) == []


@pytest.fixture
def env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    monkeypatch.chdir(tmp_path)
    with served_env(tmp_path, capsys, monkeypatch) as served:
        yield served


def _storage_with_one_event(path: Path, event_id: str) -> str:
    url = f"sqlite:///{path}"
    storage = open_storage(url)
    event = NewEvent(event_id=event_id, type="invoice.paid", payload=b"{}", source="stripe")
    storage.claim_event(event, owner="t", lease_seconds=60, now=1_700_000_000)
    storage.close()
    return url


def test_manage_py_zentitle_stripe_reads_the_settings_dict(env: Env, tmp_path: Path) -> None:
    url = _storage_with_one_event(tmp_path / "django.db", "evt_fromDjangoSettings")
    env.capsys.readouterr()
    with override_settings(ZENTITLE_STRIPE={"ZENTITLE_STRIPE_STORAGE": url}):
        call_command("zentitle_stripe", "events", "--json")
    out, err = env.capsys.readouterr()
    assert [e["event_id"] for e in json.loads(out)] == ["evt_fromDjangoSettings"]
    assert "settings.ZENTITLE_STRIPE" in err

    absent = {"ZENTITLE_STRIPE_STORAGE": "sqlite:///absent.db"}
    with override_settings(ZENTITLE_STRIPE=absent), pytest.raises(SystemExit) as exited:
        call_command("zentitle_stripe", "events")
    assert exited.value.code == 2
    assert not (tmp_path / "absent.db").exists()


def test_the_plain_cli_reads_a_django_settings_module(env: Env, tmp_path: Path) -> None:
    url = _storage_with_one_event(tmp_path / "module.db", "evt_fromSettingsModule")
    (tmp_path / "mysite_settings.py").write_text(
        f"ZENTITLE_STRIPE = {{'ZENTITLE_STRIPE_STORAGE': {url!r}}}\n", encoding="utf-8"
    )
    env.monkeypatch.syspath_prepend(str(tmp_path))

    code, out, err = env.run("events", "--django-settings", "mysite_settings", "--json")
    assert code == 0
    assert [e["event_id"] for e in json.loads(out)] == ["evt_fromSettingsModule"]

    env.monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "mysite_settings")
    code, out, _ = env.run("events", "--json")
    assert [e["event_id"] for e in json.loads(out)] == ["evt_fromSettingsModule"]

    code, _, err = env.run("events", "--django-settings", "no_such_settings")
    assert code == 2
    assert "cannot import the Django settings module 'no_such_settings'" in err


def test_the_events_page_is_read_only_and_for_staff(tmp_path: Path) -> None:
    world = EmulatedWorld()
    world.provisioner.storage.claim_event(
        NewEvent(event_id="evt_<b>page", type="invoice.paid", payload=b"{}", source="stripe"),
        owner="t",
        lease_seconds=60,
        now=1_700_000_000,
    )
    set_provisioner(world.provisioner)
    factory = RequestFactory()
    staff = types.SimpleNamespace(is_active=True, is_staff=True)
    visitor = types.SimpleNamespace(is_active=True, is_staff=False)

    request = factory.get("/admin/zentitle-stripe/events/")
    request.user = staff
    page = events_view(request)
    assert page.status_code == 200
    html = page.content.decode()
    assert "<th>event</th>" in html
    assert "evt_&lt;b&gt;page" in html  # escaped
    assert "1 event(s)" in html

    request = factory.get("/admin/zentitle-stripe/events/")
    request.user = visitor
    assert events_view(request).status_code == 403
    assert events_view(factory.get("/")).status_code == 403  # no user at all
    posted = factory.post("/admin/zentitle-stripe/events/")
    posted.user = staff
    assert events_view(posted).status_code == 405

    with django_urls("zentitle_stripe.django.admin_urls"):  # routed; anonymous: refused
        set_provisioner(world.provisioner)
        assert Client().get("/events/").status_code == 403
