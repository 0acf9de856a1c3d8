"""What OpenTelemetry costs on the webhook hot path.

Run by hand: ``python benchmarks/bench_telemetry.py [--repeat 7]``.

Times ``Provisioner.handle_event`` for a duplicate delivery (verification, one SQLite
point read, the answer and its log line; no remote call) on a temp-file SQLite storage,
with ``zentitle_stripe.telemetry``:

- ``off``: ``telemetry.disable()``, the path a missing extra takes (one global check);
- ``api``: the extra installed, no SDK configured (the API's no-op tracer and meter);
- ``sdk``: the SDK with in-memory span and metric exporters (every span recorded).

Logging is at WARNING so the INFO line is not formatted: the figures are telemetry's.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

from zentitle_stripe import Provisioner, telemetry
from zentitle_stripe.storage.sqlite import SQLiteStorage
from zentitle_stripe.testing import invoice_paid_event, sign_stripe_payload

SECRET = "whsec_bench"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    logging.getLogger("zentitle_stripe").setLevel(logging.WARNING)

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    body, header = sign_stripe_payload(invoice_paid_event([]), SECRET)
    with tempfile.TemporaryDirectory() as tmp:
        provisioner = Provisioner(
            webhook_secrets=[SECRET],
            storage=SQLiteStorage(str(Path(tmp) / "bench.db")),
            tolerance=0,
        )
        provisioner.handle_event(body, header)  # recorded: every later delivery a duplicate

        def duplicate() -> object:
            return provisioner.handle_event(body, header)

        def sdk() -> None:
            telemetry.enable(tracer_provider=tracer_provider, meter_provider=meter_provider)

        modes: dict[str, Callable[[], None]] = {
            "off": telemetry.disable,
            "api": telemetry.enable,
            "sdk": sdk,
        }
        # Rounds interleave the modes, so a noisy neighbour slows all of them alike.
        timer = timeit.Timer(duplicate)
        number, _ = timer.autorange()
        figures = {mode: float("inf") for mode in modes}
        for _ in range(args.repeat):
            for mode, switch in modes.items():
                switch()
                figures[mode] = min(figures[mode], timer.timeit(number) / number * 1e6)
                exporter.clear()
        provisioner.close()
    print(f"Python {sys.version.split()[0]}; duplicate handle_event, temp-file SQLite")
    print("| telemetry | µs per delivery | over `off` |")
    print("|---|---:|---:|")
    for mode, us in figures.items():
        print(f"| `{mode}` | {us:.1f} | {us - figures['off']:+.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
