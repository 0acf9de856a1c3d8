"""The standalone server: a plain Starlette app run by uvicorn (the `server` extra).

`zentitle-stripe serve` builds it from the environment. Routes: `POST /stripe/webhook`,
`POST /zentitle/webhook` and `GET /healthz`. The blocking core runs in the threadpool so
the event loop stays free; uvicorn's graceful shutdown lets in-flight webhooks finish on
SIGTERM (a webhook cut half way would only be retried, but finishing it is cheaper).
Starlette and uvicorn are imported only when used, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from .exceptions import MissingExtraError
from .logging import TEXT_FORMAT, JsonLogFormatter
from .provisioner import Provisioner
from .services import Services

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["JsonLogFormatter", "configure_logging", "create_app", "run", "serve_in_thread"]

LogFormat = Literal["json", "text"]

logger = logging.getLogger("zentitle_stripe")


def _require_server_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("zentitle_stripe.server", "server") from exc


def _engine(target: Provisioner | Services) -> Provisioner:
    return target.provisioner if isinstance(target, Services) else target


def create_app(
    provisioner: Provisioner | Services,
    *,
    stripe_path: str = "/stripe/webhook",
    zentitle_path: str = "/zentitle/webhook",
) -> Starlette:
    """The ASGI app: both webhooks plus `GET /healthz`.

    `/healthz` answers `{"status": "ok"}`, or 503 with the parts that are unavailable
    (`{"status": "unavailable", "unavailable": ["storage"]}`), never an error text or a
    URL. A client that disconnects before its body arrived is one INFO line. Takes a
    [`Services`][zentitle_stripe.services.Services] or a provisioner; closing stays
    with the caller.
    """
    _require_server_extra()
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from ._starlette import webhook_endpoints

    engine = _engine(provisioner)
    stripe_webhook, zentitle_webhook = webhook_endpoints(engine)

    async def healthz(request: Request) -> Response:
        unavailable = []
        try:
            await run_in_threadpool(engine.storage.ping)
        except Exception as exc:
            # Only the part and the error's type: the message may name the server or
            # hold a URL, and this endpoint is unauthenticated. `doctor` tells why.
            logger.warning(
                "health check: storage unavailable (%s); `zentitle-stripe doctor` says why",
                type(exc).__name__,
            )
            unavailable.append("storage")
        if unavailable:
            return JSONResponse({"status": "unavailable", "unavailable": unavailable}, 503)
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route(stripe_path, stripe_webhook, methods=["POST"]),
            Route(zentitle_path, zentitle_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def configure_logging(log_format: LogFormat = "text", level: str = "info") -> None:
    """Send the `zentitle_stripe` and uvicorn logs to stderr, as JSON lines or text."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    for name in ("zentitle_stripe", "uvicorn", "uvicorn.access"):
        target = logging.getLogger(name)
        target.handlers = [handler]
        target.setLevel(level.upper())
        target.propagate = False


def run(
    provisioner: Provisioner | Services,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_format: LogFormat = "text",
    log_level: str = "info",
    graceful_timeout: float = 30.0,
    access_log: bool = True,
) -> int:
    """Serve until SIGTERM/SIGINT; in-flight requests get `graceful_timeout` seconds.

    Owns what it is given: afterwards it closes the
    [`Services`][zentitle_stripe.services.Services] (for a provisioner, through
    [`Provisioner.close`][zentitle_stripe.Provisioner.close]). Returns 0 after a SIGTERM
    shutdown (a clean stop, as orchestrators expect).
    """
    _require_server_extra()
    import uvicorn

    configure_logging(log_format, log_level)
    config = uvicorn.Config(
        create_app(provisioner),
        host=host,
        port=port,
        log_config=None,
        log_level=log_level,
        access_log=access_log,
        lifespan="off",
        timeout_graceful_shutdown=math.ceil(graceful_timeout),
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal it caught once it has shut down; with a no-op handler
    # in place, SIGTERM ends in a normal return (exit code 0) instead of a kill.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        provisioner.close()
    return 0


@contextlib.contextmanager
def serve_in_thread(
    app: Any, *, name: str = "zentitle-stripe-server", timeout: float = 10.0
) -> Iterator[str]:
    """Run `app` with uvicorn on a free 127.0.0.1 port in a daemon thread (quiet logs);
    yields the base URL. For the demo, the emulators' `serve()` and tests."""
    _require_server_extra()
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        interface="asgi3",  # say so: a bound method is not detected as ASGI 3
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start on 127.0.0.1:{port}")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
