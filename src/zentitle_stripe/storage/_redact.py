"""Storage URLs without their secrets: the one place that decides what to hide.

A PostgreSQL URL can carry its password in three ways libpq reads: in the userinfo
(`postgresql://user:pw@host/db`, perhaps percent-encoded), as a query parameter
(`?password=pw`, `?sslpassword=...`, keys percent-encoded too), or in a key=value
conninfo string (`host=db password='p w'`). Paths (`passfile`, `sslkey`) are not
secrets and stay visible, so a message still says which file was meant.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["MASK", "redact_text", "redact_url"]

MASK = "***"
_SECRET_KEYS = frozenset({"password", "sslpassword"})
# A conninfo pair: key = value, the value single-quoted with backslash escapes (an
# unterminated quote runs to the end, as libpq reads it) or bare, taken up to the next
# "key=": a stray word after a password ("password=se cret") is hidden with it.
_PAIR = re.compile(
    r"(?P<key>[A-Za-z_]\w*)(?P<eq>\s*=\s*)"
    r"(?P<value>'(?:\\.|[^'\\])*'?|(?:(?!\s+[A-Za-z_]\w*\s*=).)*)",
    re.DOTALL,
)
_QUOTED = re.compile(r'"([^"]*)"')


def redact_url(url: str) -> str:
    """`url` with every password replaced by `***`, for messages, logs and `repr()`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _PAIR.sub(_masked_pair, url)
    rest = _redact_userinfo(rest)
    head, question, query = rest.partition("?")
    if question:
        query = "&".join(_redact_parameter(item) for item in query.split("&"))
    return f"{scheme}://{head}{question}{query}"


def redact_text(text: str, url: str) -> str:
    """`text` (a driver's message about `url`) without any secret of `url`.

    Each secret is replaced by `***`, and so is any double-quoted fragment of `url`
    that its redacted form does not show: libpq quotes the part of a conninfo string
    it could not read, which may be the tail of a password.
    """
    for secret in _secrets(url):
        text = text.replace(secret, MASK)
    visible = redact_url(url)

    def quoted(match: re.Match[str]) -> str:
        fragment = match[1]
        hidden = fragment and fragment in url and fragment not in visible
        return f'"{MASK}"' if hidden else match[0]

    return _QUOTED.sub(quoted, text)


def _secrets(url: str) -> tuple[str, ...]:
    """The secret values in `url`, as written and decoded, longest first."""
    found: set[str] = set()
    _, sep, rest = url.partition("://")
    if not sep:
        for match in _PAIR.finditer(url):
            if match["key"].lower() in _SECRET_KEYS:
                found.update((match["value"].strip(), _unquote_conninfo(match["value"])))
    else:
        # As hidden here, and as libpq reads it (up to the first "@" before any "/").
        slash = rest.find("/")
        libpq_end = rest.find("@", 0, slash if slash >= 0 else len(rest))
        for end in (_userinfo_end(rest), libpq_end):
            if end is None or end < 0:
                continue
            _, colon, password = rest[:end].partition(":")
            if colon:
                found.update((password, unquote(password)))
        for item in rest.partition("?")[2].split("&"):
            key, eq, value = item.partition("=")
            if eq and unquote(key).strip().lower() in _SECRET_KEYS:
                found.update((value, unquote(value)))
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def _userinfo_end(rest: str) -> int | None:
    """Where the userinfo of `rest` (the URL after `://`) ends: its "@", if any.

    The last "@" before the query, so a password with an unencoded "@" or "/" is
    hidden whole; failing that, when what precedes the "?" looks like `user:pass`, the
    first "@" after it (libpq also reads "?" inside a password). Over-hiding the host
    of an odd URL is better than showing part of a password.
    """
    head = rest.split("?", 1)[0]
    at = head.rfind("@")
    if at >= 0:
        return at
    if "?" in rest and ":" in head and "/" not in head:
        at = rest.find("@")
        return at if at >= 0 else None
    return None


def _redact_userinfo(rest: str) -> str:
    end = _userinfo_end(rest)
    if end is None:
        return rest
    user, colon, _ = rest[:end].partition(":")
    return f"{user}:{MASK}{rest[end:]}" if colon else rest


def _redact_parameter(item: str) -> str:
    key, eq, _ = item.partition("=")
    return f"{key}={MASK}" if eq and unquote(key).strip().lower() in _SECRET_KEYS else item


def _masked_pair(match: re.Match[str]) -> str:
    if match["key"].lower() not in _SECRET_KEYS:
        return match[0]
    return f"{match['key']}{match['eq']}{MASK}"


def _unquote_conninfo(value: str) -> str:
    if value.startswith("'"):
        value = value[1:-1] if len(value) > 1 and value.endswith("'") else value[1:]
        value = re.sub(r"\\(.)", r"\1", value)
    return value
