"""`settings.ZENTITLE_STRIPE`, read the one way the views, the checks and the CLI share."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..exceptions import ConfigurationError

__all__ = ["configured_environ", "settings_module_environ"]


def _as_environ(configured: Any, where: str) -> dict[str, str] | None:
    if configured is None:
        return None
    if not isinstance(configured, Mapping):
        raise ConfigurationError(
            f"{where} must be a dict of environment variable names to values, "
            f"got {type(configured).__name__}"
        )
    return {str(k): str(v) for k, v in configured.items()}


def configured_environ() -> dict[str, str] | None:
    """`settings.ZENTITLE_STRIPE` as an environment (values through `str`), or `None`
    when the project does not set it (the environment is used instead)."""
    from django.conf import settings

    return _as_environ(getattr(settings, "ZENTITLE_STRIPE", None), "settings.ZENTITLE_STRIPE")


def settings_module_environ(module: str) -> dict[str, str] | None:
    """`ZENTITLE_STRIPE` of the Django settings module `module`, read without setting up
    Django (a settings module is plain Python), for the plain CLI's `--django-settings`."""
    from django.conf import settings

    if settings.configured and getattr(settings, "SETTINGS_MODULE", None) == module:
        return configured_environ()  # that module is already loaded (inside manage.py)
    try:
        imported = importlib.import_module(module)
    except Exception as exc:  # an import error in the user's settings: name it, no trace
        raise ConfigurationError(
            f"cannot import the Django settings module {module!r}: {type(exc).__name__}: {exc}"
        ) from None
    return _as_environ(getattr(imported, "ZENTITLE_STRIPE", None), f"{module}.ZENTITLE_STRIPE")
