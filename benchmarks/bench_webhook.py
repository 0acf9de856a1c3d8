"""Webhook hot-path timings, as ratios measured in one process.

Run by hand: ``python benchmarks/bench_webhook.py [--repeat 7] [--profile]``.

Compares, on a 3-line ``invoice.paid`` payload in both payload generations:

(a) our verify + parse (``verify_stripe_signature`` + ``parse_event`` + ``parse_invoice``)
    against ``stripe.Webhook.construct_event`` (target: at least 10x faster);
(b) the same against the floor, one ``hmac.new(...).hexdigest()`` over the signed bytes plus
    ``json.loads`` (target: within 2x of it);
(c) ``Provisioner.handle_event`` for a duplicate delivery on a temp-file SQLite storage
    against ``construct_event`` alone (target: at least 2x faster).

Each figure is the best of ``--repeat`` runs of an auto-sized loop (``timeit``), so ratios
are stable across machines even when absolute figures are not. ``--profile`` prints the
top cProfile entries for each of our paths.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import hmac
import json
import platform
import pstats
import sys
import tempfile
import timeit
from collections.abc import Callable
from datetime import date
from pathlib import Path

import stripe

from zentitle_stripe import Provisioner
from zentitle_stripe.events import parse_event, parse_invoice
from zentitle_stripe.signature import verify_stripe_signature
from zentitle_stripe.storage.sqlite import SQLiteStorage
from zentitle_stripe.testing import (
    NEW_API_VERSION,
    OLD_API_VERSION,
    LineSpec,
    invoice_paid_event,
    sign_stripe_payload,
)

SECRET = "whsec_benchmark_secret"
LINES = 3


def best_us(fn: Callable[[], object], repeat: int) -> float:
    """Best per-call time of ``fn`` in microseconds (``timeit`` auto-sized loops)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def signed_invoice(api_version: str) -> tuple[bytes, str]:
    """A signed ``invoice.paid`` body with :data:`LINES` subscription lines."""
    specs = [
        LineSpec(price_id=f"price_bench{i}", sku=f"BENCH-{i}", product_id=f"prod_bench{i}")
        for i in range(LINES)
    ]
    return sign_stripe_payload(invoice_paid_event(specs, api_version=api_version), SECRET)


class Paths:
    """The callables under test for one signed body."""

    def __init__(self, body: bytes, header: str, db_path: str) -> None:
        self.body = body
        self.header = header
        self.secrets = (SECRET.encode(),)
        self.key = SECRET.encode()
        self.timestamp = header.split(",")[0].partition("=")[2].encode()
        self.provisioner = Provisioner(
            webhook_secrets=[SECRET], storage=SQLiteStorage(db_path), max_body_bytes=1 << 20
        )
        first = self.provisioner.handle_event(body, header)
        assert first.status == 200, first
        duplicate = self.provisioner.handle_event(body, header)
        assert duplicate.outcome.kind.value == "duplicate", duplicate

    def ours(self) -> object:
        verify_stripe_signature(self.body, self.header, self.secrets)
        return parse_invoice(parse_event(self.body).object)

    def stripe(self) -> object:
        return stripe.Webhook.construct_event(self.body, self.header, SECRET)

    def floor(self) -> object:
        hmac.new(self.key, self.timestamp + b"." + self.body, hashlib.sha256).hexdigest()
        return json.loads(self.body)

    def duplicate(self) -> object:
        return self.provisioner.handle_event(self.body, self.header)

    def close(self) -> None:
        self.provisioner.storage.close()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def measure(label: str, api_version: str, repeat: int, profile: bool) -> bool:
    """Print one table; returns whether every target was met."""
    body, header = signed_invoice(api_version)
    with tempfile.TemporaryDirectory() as tmp:
        paths = Paths(body, header, str(Path(tmp) / "bench.db"))
        try:
            t_ours = best_us(paths.ours, repeat)
            t_stripe = best_us(paths.stripe, repeat)
            t_floor = best_us(paths.floor, repeat)
            t_dup = best_us(paths.duplicate, repeat)
            if profile:
                for name, fn in (("verify+parse", paths.ours), ("duplicate", paths.duplicate)):
                    print(f"\n-- cProfile: {name} ({label}), 20000 calls --")
                    profiler = cProfile.Profile()
                    profiler.runcall(lambda fn=fn: [fn() for _ in range(20_000)])
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
        finally:
            paths.close()
    a = t_stripe / t_ours
    b = t_ours / t_floor
    c = t_stripe / t_dup
    print(f"\n{label}: {LINES}-line invoice.paid, {len(body)} bytes, api_version {api_version}")
    print(f"  {'path':<44}{'µs/op':>9}")
    print(f"  {'stripe.Webhook.construct_event':<44}{t_stripe:>9.2f}")
    print(f"  {'floor: hmac hexdigest + json.loads':<44}{t_floor:>9.2f}")
    print(f"  {'ours: verify + parse_event + parse_invoice':<44}{t_ours:>9.2f}")
    print(f"  {'ours: handle_event, duplicate, SQLite':<44}{t_dup:>9.2f}")
    print(f"  {'target':<44}{'ratio':>9}  result")
    print(f"  {'(a) construct_event / ours >= 10x':<44}{a:>8.1f}x  {verdict(a >= 10)}")
    print(f"  {'(b) ours / floor <= 2x':<44}{b:>8.2f}x  {verdict(b <= 2)}")
    print(f"  {'(c) construct_event / duplicate >= 2x':<44}{c:>8.2f}x  {verdict(c >= 2)}")
    return a >= 10 and b <= 2 and c >= 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7, help="best of N runs (default 7)")
    parser.add_argument("--profile", action="store_true", help="print cProfile summaries")
    args = parser.parse_args(argv)
    print(
        f"{date.today().isoformat()}  Python {platform.python_version()}  "
        f"stripe {stripe.VERSION}  {platform.machine()}  {platform.system()}"
    )
    ok = True
    for label, version in (("basil shape", NEW_API_VERSION), ("old shape", OLD_API_VERSION)):
        ok = measure(label, version, args.repeat, args.profile) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
