"""The standalone server under concurrent load, against a hand-written FastAPI endpoint.

Run by hand: ``python benchmarks/bench_serve.py [--seconds 5] [--rounds 3]`` (needs the
`server` extra, `fastapi` and `stripe`).

Each server runs in a process of its own (uvicorn, one worker, access log off): ours is
`zentitle_stripe.server.create_app` on the default SQLite storage (a temp file), the
baseline a FastAPI endpoint that only calls `stripe.Webhook.construct_event`. A Python
load generator (asyncio + httpx, 32 concurrent connections) posts signed, first-seen
events of an unhandled type; the servers take turns for `--rounds` rounds. Prints
requests/s and p50/p90/p99 latency per server, best round by throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from fastapi import Request, Response  # module level: FastAPI resolves the annotations here

SECRET = "whsec_benchmark_secret"
CONNECTIONS = 32


def _ours(port: int, directory: str) -> None:
    import uvicorn

    from zentitle_stripe import Provisioner
    from zentitle_stripe.server import create_app
    from zentitle_stripe.storage.sqlite import SQLiteStorage

    storage = SQLiteStorage(str(Path(directory) / "zentitle_stripe.db"))
    app = create_app(Provisioner(webhook_secrets=[SECRET], storage=storage))
    uvicorn.run(app, port=port, log_level="warning", access_log=False, lifespan="off")


def _fastapi(port: int) -> None:
    import stripe
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/stripe/webhook")
    async def webhook(request: Request) -> Response:
        body = await request.body()
        signature = request.headers.get("stripe-signature", "")
        try:
            stripe.Webhook.construct_event(body, signature, SECRET)
        except (ValueError, stripe.SignatureVerificationError):
            return Response(status_code=400)
        return Response('{"received": true}', media_type="application/json")

    uvicorn.run(app, port=port, log_level="warning", access_log=False, lifespan="off")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(kind: str, directory: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--dir", directory]
    process = subprocess.Popen(command, env=os.environ.copy())  # noqa: S603 - our own script
    url = f"http://127.0.0.1:{port}/stripe/webhook"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.post(url, content=b"{}", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{kind} server did not start")


def _signed() -> tuple[bytes, str]:
    from zentitle_stripe.testing import make_event, sign_stripe_payload

    event = make_event(
        "customer.updated",
        {"id": "cus_bench", "object": "customer"},
        event_id=f"evt_{uuid.uuid4().hex}",
    )
    return sign_stripe_payload(event, SECRET)


async def _load(url: str, seconds: float) -> tuple[float, list[float], int]:
    """Requests/s, sorted latencies (ms) and the count of non-200 answers."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < end:
                body, signature = _signed()
                started = time.perf_counter()
                response = await client.post(
                    url, content=body, headers={"Stripe-Signature": signature}
                )
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return len(latencies) / elapsed, latencies, errors


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", choices=["ours", "fastapi"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--dir")
    args = parser.parse_args(argv)
    if args.serve == "ours":
        _ours(args.port, args.dir)
        return 0
    if args.serve == "fastapi":
        _fastapi(args.port)
        return 0
    with tempfile.TemporaryDirectory() as directory:
        servers = {
            "fastapi + construct_event": _start("fastapi", directory),
            "zentitle-stripe server, SQLite": _start("ours", directory),
        }
        best: dict[str, tuple[float, list[float], int]] = {}
        try:
            for _ in range(args.rounds):
                for name, (_, url) in servers.items():
                    result = asyncio.run(_load(url, args.seconds))
                    if name not in best or result[0] > best[name][0]:
                        best[name] = result
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(10)
    print(f"{CONNECTIONS} connections, {args.seconds:g} s per round, best of {args.rounds}")
    for name, (rate, latencies, errors) in best.items():
        print(
            f"  {name:<32} {rate:7.0f} req/s  p50 {_pct(latencies, 0.5):6.1f} ms  "
            f"p90 {_pct(latencies, 0.9):6.1f} ms  p99 {_pct(latencies, 0.99):6.1f} ms  "
            f"non-200: {errors}"
        )
    ours, theirs = best["zentitle-stripe server, SQLite"], best["fastapi + construct_event"]
    ratio, p99 = ours[0] / theirs[0], _pct(ours[1], 0.99)
    ok = ratio >= 1 and p99 <= 100
    print(f"  throughput ratio {ratio:.2f}x, p99 {p99:.1f} ms — {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
