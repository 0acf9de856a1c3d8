"""Fixtures for every test: the Zentitle2 contract check, one `world`, the served docs
examples. Helpers to import live in `tests.support`, not here."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.support import GENERATIONS, ExampleEnv, make_world
from zentitle_stripe.demo import DemoStory
from zentitle_stripe.testing import EmulatedWorld, take_contract_violations

# CI machines are small and shared: judge properties, not the speed of generating inputs.
settings.register_profile(
    "zentitle-stripe",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("zentitle-stripe")


@pytest.fixture(autouse=True)
def _zentitle_contract_holds() -> Iterator[None]:
    """Fail any test during which the Zentitle2 emulator saw or sent something outside
    Zentitle2's contract, even when the code under test caught the violation."""
    take_contract_violations()
    yield
    violations = take_contract_violations()
    if violations:
        pytest.fail(
            "Zentitle2 contract violated:\n" + "\n".join(str(v) for v in violations),
            pytrace=False,
        )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`@pytest.mark.world(generations=True)` runs each test asking for `api_version`
    (the `world` fixture does) once per Stripe payload generation."""
    marker = metafunc.definition.get_closest_marker("world")
    if marker and marker.kwargs.get("generations") and "api_version" in metafunc.fixturenames:
        metafunc.parametrize("api_version", list(GENERATIONS.values()), ids=list(GENERATIONS))


@pytest.fixture
def api_version() -> str | None:
    """The Stripe payload generation of the `world`; `None` is the emulator's default."""
    return None


@pytest.fixture
def world_options() -> dict[str, Any]:
    """Options of the `world` added to its marker's; override it in a module whose
    options depend on other fixtures."""
    return {}


@pytest.fixture
def world(
    request: pytest.FixtureRequest, api_version: str | None, world_options: dict[str, Any]
) -> Iterator[EmulatedWorld]:
    """An `EmulatedWorld` from `make_world`, closed afterwards.

    Its options are the keywords of the closest `@pytest.mark.world(...)` (on the test,
    class or module), then `world_options`; `generations=True` in the marker runs the
    test in both Stripe payload generations.
    """
    marker = request.node.get_closest_marker("world")
    options = dict(marker.kwargs) if marker else {}
    options.pop("generations", None)
    options.update(world_options)
    if api_version is not None:
        options["api_version"] = api_version
    world = make_world(**options)
    yield world
    world.close()


@pytest.fixture
def served_example_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ExampleEnv]:
    """Seeded emulators served on loopback and the environment pointing at them, so an
    example's `Provisioner.from_env()` works as it would for a user. Yields the story
    and a loader that imports a file as a fresh module."""
    pytest.importorskip("uvicorn", reason="serving the emulators needs the 'server' extra")
    story = DemoStory()
    story.seed()
    story.zentitle.add_webhook("http://app.invalid/zentitle/webhook", ["entitlement.group.created"])
    loaded: list[ModuleType] = []

    def load(path: Path) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"example_{uuid.uuid4().hex}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        loaded.append(module)
        return module

    with story.served(str(tmp_path)) as environ:
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        yield story, load
        for module in loaded:
            provisioner = getattr(module, "provisioner", None)
            if provisioner is not None:
                provisioner.close()  # from_env: its Services close storage and both clients
