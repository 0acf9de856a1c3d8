"""The standalone server under concurrent load, against a hand-written FastAPI endpoint.

Run by hand: ``python benchmarks/bench_serve.py [--seconds 5] [--rounds 3]
[--client wrk] [--loop uvloop] [--http httptools]`` (needs the `server` extra,
`fastapi` and `stripe`; `--client wrk` the `wrk` program, `--loop uvloop` and
`--http httptools` those packages).

Each server runs in a process of its own (uvicorn, one worker, access log off, the same
`--loop` and `--http` for both): ours is `zentitle_stripe.server.create_app` on the
default SQLite storage (a temp file), the baseline a FastAPI endpoint that only calls
`stripe.Webhook.construct_event`. The load generator, a Python one (asyncio + httpx) or
`wrk` (C, so it takes far less of the machine's CPU from the servers), keeps 32
connections busy posting signed, first-seen events of an unhandled type; the servers
take turns for `--rounds` rounds. Prints requests/s and p50/p90/p99 latency per server,
best round by throughput, and the machine's load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
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


def _uvicorn(app: object, port: int, loop: str, http: str) -> None:
    import uvicorn

    uvicorn.run(
        app,  # type: ignore[arg-type]
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop=loop,
        http=http,
    )


def _ours(port: int, directory: str, loop: str, http: str) -> None:
    from zentitle_stripe import Provisioner
    from zentitle_stripe.server import create_app
    from zentitle_stripe.storage.sqlite import SQLiteStorage

    storage = SQLiteStorage(str(Path(directory) / "zentitle_stripe.db"))
    app = create_app(Provisioner(webhook_secrets=[SECRET], storage=storage))
    _uvicorn(app, port, loop, http)


def _fastapi(port: int, loop: str, http: str) -> None:
    import stripe
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

    _uvicorn(app, port, loop, http)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(kind: str, directory: str, loop: str, http: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--dir", directory]
    command += ["--loop", loop, "--http", http]
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


_WRK_SCRIPT = """
local bodies = dofile("{bodies}")
local i = 0
request = function()
    i = i + 1
    local item = bodies[(i - 1) % #bodies + 1]
    return wrk.format("POST", nil, {{["Stripe-Signature"] = item[2],
        ["Content-Type"] = "application/json"}}, item[1])
end
"""


def _wrk(url: str, seconds: float, directory: str) -> tuple[float, list[float], int]:
    """One `wrk` round (1 thread, 32 connections): requests/s, the latencies it reports
    (p50, p75, p90, p99 as a 101-entry list for `_pct`), non-2xx answers. Each request
    takes the next of enough fresh signed bodies for 6,000 requests/s."""
    count = int(seconds * 6000)
    lines = ["return {"]
    for _ in range(count):
        body, signature = _signed()
        lines.append(f"{{[==[{body.decode()}]==], [==[{signature}]==]}},")
    lines.append("}")
    bodies = Path(directory) / "bodies.lua"
    bodies.write_text("\n".join(lines))
    script = Path(directory) / "post.lua"
    script.write_text(_WRK_SCRIPT.format(bodies=bodies))
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "-s", str(script)]
    output = subprocess.run(  # noqa: S603 - wrk, found on PATH by the caller
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    if total > count:
        print(f"  warning: {total} requests for {count} bodies: some were redeliveries")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    found = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)", output, re.MULTILINE))
    marks = {p: _ms(found[str(p)]) for p in (50, 75, 90, 99)}
    # A 101-entry list whose percentiles `_pct` reads back as wrk reported them.
    latencies = [marks[min((p for p in marks if p >= q), default=99)] for q in range(101)]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    return rate, latencies, errors


def _ms(text: str) -> float:
    """A wrk duration (`812.00us`, `1.20ms`, `2.01s`) in milliseconds."""
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", choices=["httpx", "wrk"], default="httpx")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--http", choices=["auto", "h11", "httptools"], default="auto")
    parser.add_argument("--serve", choices=["ours", "fastapi"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--dir")
    args = parser.parse_args(argv)
    if args.serve == "ours":
        _ours(args.port, args.dir, args.loop, args.http)
        return 0
    if args.serve == "fastapi":
        _fastapi(args.port, args.loop, args.http)
        return 0
    if args.client == "wrk" and shutil.which("wrk") is None:
        parser.error("--client wrk: no wrk on PATH (apt-get install wrk)")
    print(f"load average before: {_load_average()}")
    with tempfile.TemporaryDirectory() as directory:
        servers = {
            "fastapi + construct_event": _start("fastapi", directory, args.loop, args.http),
            "zentitle-stripe server, SQLite": _start("ours", directory, args.loop, args.http),
        }
        best: dict[str, tuple[float, list[float], int]] = {}
        try:
            for _ in range(args.rounds):
                for name, (_, url) in servers.items():
                    if args.client == "wrk":
                        result = _wrk(url, args.seconds, directory)
                    else:
                        result = asyncio.run(_load(url, args.seconds))
                    if name not in best or result[0] > best[name][0]:
                        best[name] = result
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(10)
    print(f"load average after: {_load_average()}")
    print(
        f"{CONNECTIONS} connections ({args.client}), loop {args.loop}, http {args.http}, "
        f"{args.seconds:g} s per round, best of {args.rounds}"
    )
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


def _load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
