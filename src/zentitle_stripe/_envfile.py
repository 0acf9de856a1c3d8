"""A `.env` file read the way python-dotenv reads one, without the dependency.

`KEY=VALUE` lines; `#` comments and blank lines skipped; an optional `export ` prefix;
values in single or double quotes keep `#` and spaces (double quotes also read `\\n`);
an unquoted value ends at ` #`. The real environment wins over the file (python-dotenv's
rule), so a deployment can override what a developer's file says.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .exceptions import ConfigurationError

__all__ = ["merged_environ", "read_env_file"]


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The variables `path` sets; a missing or unreadable file raises
    [`ConfigurationError`][zentitle_stripe.exceptions.ConfigurationError]."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigurationError(f"cannot read the env file {str(path)!r}: {reason}") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigurationError(
                f"{str(path)!r} line {number} is not KEY=VALUE (the value is not shown)"
            )
        values[key] = _value(value.strip())
    return values


def _value(text: str) -> str:
    if len(text) >= 2 and text[0] in "'\"" and text[0] in text[1:]:
        quote = text[0]
        inner = text[1 : text.index(quote, 1)]
        return inner.replace("\\n", "\n") if quote == '"' else inner
    comment = text.find(" #")
    return (text[:comment] if comment >= 0 else text).strip()


def merged_environ(
    env_file: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> Mapping[str, str]:
    """`environ` (`os.environ` when `None`) over the file's variables: the environment wins."""
    env = os.environ if environ is None else environ
    if env_file is None:
        return env
    return {**read_env_file(env_file), **env}
