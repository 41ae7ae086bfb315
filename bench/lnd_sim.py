"""Latency of the lnd client against the lnd simulator, in one run: ``python bench/lnd_sim.py [--n 300]``
(or ``python -m bench.lnd_sim``).

Measures, through TLS, macaroons and the real gRPC surface, per call: GetInfo (the baseline: a call
that does nothing), AddInvoice, LookupInvoice, a payment (SendPaymentV2 until SUCCEEDED) and the
settlement push (payment started → the merchant's SubscribeInvoices delivers SETTLED).
Prints p50/p99 in milliseconds and each against the baseline's p50. Touches no database or Redis;
the nodes live in a temporary directory. Absolute figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root holds ``tests``, whose simulator fixture it uses
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.lnd_fixtures import running_lnd


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.monotonic()
        fn()
        samples.append((time.monotonic() - start) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory() as tmp, running_lnd(Path(tmp)) as lnd:
        merchant, payer = lnd.client("merchant"), lnd.client("payer")
        merchant.get_info(), payer.get_info()  # connect both channels
        figures: dict[str, list[float]] = {"GetInfo (baseline)": timed(merchant.get_info, n)}
        created = []
        figures["AddInvoice"] = timed(lambda: created.append(merchant.add_invoice(1_000, memo="bench")), n)
        figures["LookupInvoice"] = timed(lambda: merchant.lookup_invoice(created[0].payment_hash), n)

        seen: dict[int, float] = {}
        stream = merchant.subscribe_invoices(add_index=len(created), settle_index=0, timeout_s=600)

        def listen() -> None:
            for invoice in stream:
                seen[invoice.settle_index] = time.monotonic()

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        started: list[float] = []
        paying: list[float] = []
        for invoice in created:
            started.append(time.monotonic())
            payer.pay(invoice.payment_request)
            paying.append((time.monotonic() - started[-1]) * 1000)
        deadline = time.monotonic() + 30
        while len(seen) < n and time.monotonic() < deadline:
            time.sleep(0.01)  # bench wait for the last pushes, bounded
        stream.close()
        figures["Payment (SendPaymentV2 → SUCCEEDED)"] = paying
        figures["Settlement push (pay started → SETTLED update)"] = [
            (seen[i + 1] - started[i]) * 1000 for i in range(n) if i + 1 in seen
        ]
    base = statistics.median(figures["GetInfo (baseline)"])
    print(f"lnd simulator, {n} calls each (ms)")
    for name, samples in figures.items():
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        print(f"  {name:46} n={len(samples):4}  p50 {p50:7.2f}  p99 {p99:7.2f}  p50/baseline {p50 / base:5.2f}")


if __name__ == "__main__":
    main()
