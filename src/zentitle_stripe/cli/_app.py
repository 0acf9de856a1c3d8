"""`--app module:attribute`: the app's own provisioner, with the handlers it registers.

A Zentitle2 event is handled by the functions the app registers with `on_zentitle`; a
process that only reads the environment has none of them. `--app` imports the app the
way uvicorn and `flask --app` do (the current directory first on `sys.path`), so a
replay runs exactly what a delivery to the app would.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from ..exceptions import ConfigurationError
from ..provisioner import Provisioner
from ..services import Services

__all__ = ["APP_HELP", "load_app", "loaded_app"]

APP_HELP = (
    "your app's provisioner as module:attribute (e.g. yourapp.webhooks:provisioner): a "
    "Provisioner or Services, or a function returning one, imported from the current "
    "directory; its registered Zentitle2 handlers run"
)
_FORMAT = "--app takes module:attribute, e.g. --app yourapp.webhooks:provisioner"


def _import(module_name: str, spec: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(f"{missing}."):
            raise ConfigurationError(
                f"--app {spec}: no module {missing!r} in {cwd} or on the Python path; "
                "run from your project's directory or check the name"
            ) from exc
        raise ConfigurationError(f"--app {spec}: importing {module_name} failed: {exc}") from exc
    except Exception as exc:  # the app's own code failed while being imported
        raise ConfigurationError(
            f"--app {spec}: importing {module_name} raised {type(exc).__name__}: {exc}"
        ) from exc


def _attribute(module: Any, path: str, spec: str) -> Any:
    found = module
    for name in path.split("."):
        try:
            found = getattr(found, name)
        except AttributeError:
            raise ConfigurationError(
                f"--app {spec}: {module.__name__} has no attribute {path!r}"
            ) from None
    return found


def load_app(spec: str) -> tuple[Provisioner, bool]:
    """The provisioner `spec` (`module:attribute`) names, and whether this call built it
    (a factory was called), in which case the caller closes it.

    Every problem is a [`ConfigurationError`][zentitle_stripe.exceptions.ConfigurationError]
    saying what to pass instead.
    """
    module_name, sep, path = spec.partition(":")
    if not sep or not module_name or not path:
        raise ConfigurationError(f"{_FORMAT}; got {spec!r}")
    found = _attribute(_import(module_name, spec), path, spec)
    built = False
    if callable(found) and not isinstance(found, (Provisioner, Services)):
        try:
            found = found()
        except Exception as exc:
            raise ConfigurationError(
                f"--app {spec}: calling {path}() raised {type(exc).__name__}: {exc}"
            ) from exc
        built = True
    if isinstance(found, Services):
        found = found.provisioner
    if not isinstance(found, Provisioner):
        raise ConfigurationError(
            f"--app {spec} is a {type(found).__name__}, not a Provisioner or Services "
            "(or a function without arguments returning one)"
        )
    return found, built


@contextlib.contextmanager
def loaded_app(spec: str) -> Iterator[Provisioner]:
    """`load_app`, closing what it built afterwards (an object the module holds stays
    the module's)."""
    provisioner, built = load_app(spec)
    try:
        yield provisioner
    finally:
        if built:
            provisioner.close()
