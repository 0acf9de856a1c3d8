"""One driver per web adapter (Flask, FastAPI, Django, the standalone server), each
through its framework's own test client, so an adapter scenario is written once.

A driver needs its framework only when built: `App.require()` skips the test when the
framework is not installed (the README's `.[test]` install has none of them).
"""

from __future__ import annotations

import abc
import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import pytest

from tests.support import EXAMPLES
from zentitle_stripe import Provisioner
from zentitle_stripe.testing import OutgoingWebhook, StripeEmulator

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "APPS",
    "DJANGO_SETTINGS",
    "App",
    "DjangoApp",
    "FastAPIApp",
    "FlaskApp",
    "Paths",
    "Reply",
    "ServerApp",
    "configure_django",
    "django_urls",
]


class Paths(NamedTuple):
    """Where an app serves the Stripe webhook and the Zentitle2 webhook."""

    stripe: str = "/stripe/webhook"
    zentitle: str = "/zentitle/webhook"


DEFAULT_PATHS = Paths()
Loader = Callable[[Path], ModuleType]


class Reply(NamedTuple):
    """What an app answered; header names are lower-cased."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class App(abc.ABC):
    """A web app under test wrapping a provisioner, with the paths of its two webhooks."""

    requires: ClassVar[tuple[str, ...]]

    def __init__(self, paths: Paths = DEFAULT_PATHS) -> None:
        self.paths = paths
        self._cleanup = contextlib.ExitStack()

    @classmethod
    def require(cls) -> None:
        """Skip the calling test unless this framework is installed."""
        for module in cls.requires:
            pytest.importorskip(module)

    @classmethod
    @abc.abstractmethod
    def serving(cls, provisioner: Provisioner, paths: Paths = DEFAULT_PATHS) -> Self:
        """The adapter mounted on a fresh app, webhooks at the given paths."""

    @classmethod
    @abc.abstractmethod
    def from_example(cls, load: Loader) -> Self:
        """The app of this framework's example in `docs/examples`, loaded with `load`."""

    @abc.abstractmethod
    def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Reply:
        """One request through the framework's test client."""

    @abc.abstractmethod
    def stream(self, path: str, chunks: list[bytes], headers: Mapping[str, str]) -> Reply:
        """POST `chunks` as a body of unknown length (no `Content-Length`)."""

    def post(self, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("POST", path, body, headers)

    def deliver(self, stripe: StripeEmulator, event: Mapping[str, Any]) -> Reply:
        """POST `event` to the Stripe webhook, signed as Stripe would."""
        body, header = stripe.sign(dict(event))
        return self.post(self.paths.stripe, body, {"Stripe-Signature": header})

    def forward(self, webhook: OutgoingWebhook) -> Reply:
        """POST a Zentitle2 webhook from the emulator's outbox to the Zentitle2 webhook."""
        return self.post(self.paths.zentitle, webhook.body, dict(webhook.headers))

    def close(self) -> None:
        self._cleanup.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


class FlaskApp(App):
    requires = ("flask",)

    def __init__(self, app: Any, paths: Paths = DEFAULT_PATHS) -> None:
        super().__init__(paths)
        self.app = app
        self.client = app.test_client()

    @classmethod
    def serving(cls, provisioner: Provisioner, paths: Paths = DEFAULT_PATHS) -> FlaskApp:
        from flask import Flask

        from zentitle_stripe.flask import init_app

        app = Flask(__name__)
        init_app(app, provisioner, stripe_path=paths.stripe, zentitle_path=paths.zentitle)
        return cls(app, paths)

    @classmethod
    def from_example(cls, load: Loader) -> FlaskApp:
        return cls(load(EXAMPLES / "flask_app.py").app)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Reply:
        return self._reply(self.client.open(path, method=method, data=body, headers=headers))

    def stream(self, path: str, chunks: list[bytes], headers: Mapping[str, str]) -> Reply:
        # Werkzeug reads a chunked body to its end only when the server says it is terminated.
        response = self.client.post(
            path,
            data=b"".join(chunks),
            headers={**headers, "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        return self._reply(response)

    @staticmethod
    def _reply(response: Any) -> Reply:
        return Reply(response.status_code, _lower(response.headers), response.get_data())


class _StarletteApp(App):
    """FastAPI's app and the server's are both Starlette apps: one test client drives both."""

    def __init__(self, app: Any, paths: Paths = DEFAULT_PATHS) -> None:
        from starlette.testclient import TestClient

        super().__init__(paths)
        self.client = self._cleanup.enter_context(TestClient(app))  # with its lifespan

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Reply:
        return self._reply(self.client.request(method, path, content=body, headers=headers))

    def stream(self, path: str, chunks: list[bytes], headers: Mapping[str, str]) -> Reply:
        return self._reply(self.client.post(path, content=iter(chunks), headers=dict(headers)))

    @staticmethod
    def _reply(response: Any) -> Reply:
        return Reply(response.status_code, _lower(response.headers), response.content)


class FastAPIApp(_StarletteApp):
    requires = ("fastapi",)

    @classmethod
    def serving(cls, provisioner: Provisioner, paths: Paths = DEFAULT_PATHS) -> FastAPIApp:
        from fastapi import FastAPI

        from zentitle_stripe.fastapi import make_router

        app = FastAPI()
        app.include_router(
            make_router(provisioner, stripe_path=paths.stripe, zentitle_path=paths.zentitle)
        )
        return cls(app, paths)

    @classmethod
    def from_example(cls, load: Loader) -> FastAPIApp:
        return cls(load(EXAMPLES / "fastapi_app.py").app)


class ServerApp(_StarletteApp):
    requires = ("starlette", "uvicorn")

    @classmethod
    def serving(cls, provisioner: Provisioner, paths: Paths = DEFAULT_PATHS) -> ServerApp:
        from zentitle_stripe.server import create_app

        app = create_app(provisioner, stripe_path=paths.stripe, zentitle_path=paths.zentitle)
        return cls(app, paths)

    @classmethod
    def from_example(cls, load: Loader) -> ServerApp:
        return cls(load(EXAMPLES / "asgi_app.py").app)


#: What every Django test runs under, even if another module configured Django first.
DJANGO_SETTINGS: dict[str, Any] = {
    "ALLOWED_HOSTS": ["testserver"],
    "MIDDLEWARE": ["django.middleware.csrf.CsrfViewMiddleware"],
}


def configure_django() -> None:
    """Configure Django once per process (it allows nothing else), as a project would."""
    from django.conf import settings

    if not settings.configured:
        import django

        settings.configure(
            DEBUG=False,
            SECRET_KEY="zentitle-stripe-tests",
            ROOT_URLCONF="zentitle_stripe.django.urls",
            INSTALLED_APPS=["zentitle_stripe.django"],  # its checks and manage.py command
            USE_TZ=True,
            **DJANGO_SETTINGS,
        )
        django.setup()


@contextlib.contextmanager
def django_urls(urlconf: str | ModuleType) -> Iterator[None]:
    """Serve `urlconf` under the test settings; the adapter's provisioner is reset after."""
    configure_django()
    from django.test import override_settings

    from zentitle_stripe.django import set_provisioner

    try:
        with override_settings(ROOT_URLCONF=urlconf, **DJANGO_SETTINGS):
            yield
    finally:
        set_provisioner(None)


class DjangoApp(App):
    requires = ("django",)

    def __init__(self, paths: Paths = DEFAULT_PATHS) -> None:
        from django.test import Client

        super().__init__(paths)
        # CSRF checks on, as in production: the views must be exempt.
        self.client = Client(enforce_csrf_checks=True)

    @classmethod
    def serving(cls, provisioner: Provisioner, paths: Paths = DEFAULT_PATHS) -> DjangoApp:
        configure_django()
        from zentitle_stripe.django import make_urlpatterns, set_provisioner

        urlconf: str | ModuleType = "zentitle_stripe.django.urls"  # the shipped URLconf
        if paths != DEFAULT_PATHS:
            urlconf = ModuleType("custom_urls")
            urlconf.urlpatterns = make_urlpatterns(paths.stripe[1:], paths.zentitle[1:])  # type: ignore[attr-defined]
        app = cls(paths)
        app._cleanup.enter_context(django_urls(urlconf))
        set_provisioner(provisioner)
        return app

    @classmethod
    def from_example(cls, load: Loader) -> DjangoApp:
        configure_django()
        from django.test import override_settings

        from zentitle_stripe.django import set_provisioner

        example_settings = load(EXAMPLES / "django_settings.py")
        set_provisioner(None)
        app = cls(Paths(*(f"/billing{path}" for path in DEFAULT_PATHS)))
        app._cleanup.enter_context(
            override_settings(ZENTITLE_STRIPE=example_settings.ZENTITLE_STRIPE)
        )
        app._cleanup.enter_context(django_urls(load(EXAMPLES / "django_urls.py")))
        return app

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Reply:
        sent = _lower(headers or {})
        content_type = sent.pop("content-type", "application/json")
        response = self.client.generic(method, path, body, content_type=content_type, headers=sent)
        return Reply(response.status_code, _lower(response.headers), response.content)

    def stream(self, path: str, chunks: list[bytes], headers: Mapping[str, str]) -> Reply:
        pytest.skip("Django's test client always sends a Content-Length")


#: Every driver, by the id its tests are named with.
APPS: dict[str, type[App]] = {
    "flask": FlaskApp,
    "fastapi": FastAPIApp,
    "django": DjangoApp,
    "server": ServerApp,
}
