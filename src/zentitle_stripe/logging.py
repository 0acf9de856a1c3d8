"""JSON (or text) logs in one line for any framework: a formatter and a `dictConfig`.

```python
import logging.config
from zentitle_stripe.logging import dict_config

logging.config.dictConfig(dict_config())  # Flask, FastAPI, any app
LOGGING = dict_config()                   # Django's settings.py
```

Each line is one JSON object with `time`, `level`, `logger`, `message` and the fields
the library attaches: for an answered delivery `source`, `event_id`, `event_type`,
`outcome`, `status`, `duration_ms`, `detail` (the reason sent back) and `diagnosis` (what
a refused check saw); for a remote retry `remote`, `attempt` and `wait_s`. Only those
names are copied from a record, so nothing else an `extra` holds reaches the log.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

__all__ = ["EVENT_FIELDS", "TEXT_FORMAT", "JsonLogFormatter", "dict_config"]

EVENT_FIELDS = (
    "source",
    "event_id",
    "event_type",
    "outcome",
    "status",
    "duration_ms",
    "detail",
    "diagnosis",
    "remote",
    "attempt",
    "wait_s",
)
"""The `extra` fields the library attaches to its records, in output order."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The text lines of `zentitle-stripe serve` (and `dict_config(log_format="text")`)."""


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message and the
    [`EVENT_FIELDS`][zentitle_stripe.logging.EVENT_FIELDS] a record has; a traceback,
    if any, as `error`. Usable from `logging.config`:
    `{"()": "zentitle_stripe.logging.JsonLogFormatter"}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in EVENT_FIELDS:
            if field in record.__dict__:
                entry[field] = record.__dict__[field]
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def dict_config(
    level: str = "INFO",
    *,
    log_format: Literal["json", "text"] = "json",
    loggers: Sequence[str] = ("zentitle_stripe",),
) -> dict[str, Any]:
    """A `logging.config.dictConfig` schema sending `loggers` to stderr as JSON lines
    (or text), at `level`.

    Loggers it does not name are left as they were (`disable_existing_loggers` is off);
    add your own (`loggers=("zentitle_stripe", "myapp")`) or `""` for the root logger.
    The named loggers do not propagate, so a line is not printed twice by the root's
    handler.
    """
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonLogFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "zentitle_stripe",
        "stream": "ext://sys.stderr",
    }
    named = {
        name: {"handlers": ["zentitle_stripe"], "level": level.upper(), "propagate": False}
        for name in loggers
        if name
    }
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"zentitle_stripe": formatter},
        "handlers": {"zentitle_stripe": handler},
        "loggers": named,
    }
    if "" in loggers:
        config["root"] = {"handlers": ["zentitle_stripe"], "level": level.upper()}
    return config
