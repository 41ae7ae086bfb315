"""One payment sweep over 10,000 open on-chain requests, beside the naive one-check-per-request loop.

Both read the same regtest node (the simulator, over JSON-RPC) and the same database in one run;
printed: RPC calls and wall seconds for each, and their ratios. Usage:

    .venv/bin/python bench/payments_sweep.py [--requests 10000] [--paid 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bitcoinrpc.authproxy import AuthServiceProxy
from sqlalchemy import insert, select

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Processes, free_port, poll, recreate_database
from satworks.db import apps
from satworks.db.engine import sync_engine
from satworks.db.migrate import upgrade
from satworks.db.schema import apps as apps_table
from satworks.db.schema import payment_requests
from satworks.integrations.bitcoin.rpc import BitcoinRpc
from satworks.jobs.payments import PaymentResources, check, sweep
from satworks.settings import Settings

PG = os.environ.get("SATWORKS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB = f"satworks_bench_payments_{os.getpid()}"  # per run: never another run's database


def node_answers(url: str) -> bool:
    try:
        AuthServiceProxy(url, timeout=2).getblockcount()
    except Exception:  # not up yet
        return False
    return True


def pay(payer: AuthServiceProxy, addresses: list[str]) -> None:
    """Pay each address 10,000 sat, mining a block every 20 payments: Core refuses chains of more than
    25 unconfirmed ancestors, and each payment spends the previous one's change."""
    miner = payer.getnewaddress()
    for i, address in enumerate(addresses, 1):
        payer.sendtoaddress(address, Decimal("0.0001"))
        if i % 20 == 0:
            payer.generatetoaddress(1, miner)
    payer.generatetoaddress(1, miner)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--paid", type=int, default=200)
    args = parser.parse_args()

    port = free_port()
    procs = Processes(Path(tempfile.mkdtemp(prefix="satworks-payments-sweep-")))
    node = [sys.executable, "-m", "satworks.devnodes.bitcoind", "--port", str(port), "--premine", "101"]
    procs.start("bitcoind", [*node, "--log-level", "WARNING"], {**os.environ})
    url = f"http://satworks:satworks@127.0.0.1:{port}"
    try:
        poll(lambda: node_answers(url), deadline_s=30, what="the node simulator to answer", every_s=0.1)
        run(url, args.requests, args.paid)
    finally:
        procs.stop_all()


def run(url: str, n: int, paid: int) -> None:
    recreate_database(DB, admin_url=PG, create=True)
    server = PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    settings = Settings(database_url=f"{server}/{DB}", bitcoind_rpc_url=url, log_level="WARNING")
    upgrade(settings.database_url)
    engine = sync_engine(settings.database_url, pool_size=4)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:  # one proxy per call: AuthServiceProxy is not thread-safe
        addresses = list(pool.map(lambda _: AuthServiceProxy(url, timeout=30).getnewaddress(), range(n)))
    print(f"addresses: {time.perf_counter() - t0:.1f} s", flush=True)
    with engine.begin() as conn:
        apps.create(conn, "bench", admin=False, rate_limit_per_minute=None)
        app_id = conn.execute(select(apps_table.c.id).where(apps_table.c.name == "bench")).scalar()
        now = datetime.now(UTC)
        ids = [uuid.uuid4() for _ in range(n)]
        conn.execute(
            insert(payment_requests),
            [
                {
                    "id": i,
                    "app_id": app_id,
                    "method": "onchain",
                    "status": "new",
                    "amount_sat": 10_000,
                    "required_confirmations": 1,
                    "tolerance_pct": Decimal(0),
                    "monitoring_s": 86_400,
                    "address": a,
                    "address_supplied": False,
                    "metadata": {},
                    "request_hash": "bench",
                    "created_at": now,
                    "expires_at": now + timedelta(hours=1),
                }
                for i, a in zip(ids, addresses, strict=True)
            ],
        )
    print(f"rows: {time.perf_counter() - t0:.1f} s", flush=True)
    payer = AuthServiceProxy(url, timeout=30)
    pay(payer, addresses[:paid])
    setup_s = time.perf_counter() - t0

    rpc = BitcoinRpc(url, timeout_s=30)
    res = PaymentResources(settings, engine, rpc, lambda *_: None)

    t = time.perf_counter()
    first = sweep(res)
    sweep_s = time.perf_counter() - t
    # A second block with new payments: the steady state, from the stored cursor.
    pay(payer, addresses[paid : paid + 50])
    t = time.perf_counter()
    second = sweep(res)
    steady_s = time.perf_counter() - t

    naive_rpc = BitcoinRpc(url, timeout_s=30)
    naive = PaymentResources(settings, engine, naive_rpc, lambda *_: None)
    t = time.perf_counter()
    for payment_id in ids:
        check(naive, str(payment_id))
    naive_s = time.perf_counter() - t

    with engine.connect() as conn:
        settled = conn.execute(payment_requests.select().where(payment_requests.c.status == "settled")).all()
    engine.dispose()
    recreate_database(DB, admin_url=PG)

    print(f"\nsetup: {n} requests, {paid + 50} paid, {setup_s:.1f} s (not measured below)\n")
    print(f"{'method':<44} {'RPC calls':>10} {'seconds':>9} {'calls/request':>14}")
    rows: list[tuple[str, dict[str, Any] | None, int, float]] = [
        ("sweep, first (no cursor: whole wallet)", first, first["rpc_calls"], sweep_s),
        ("sweep, next block (from the cursor)", second, second["rpc_calls"], steady_s),
        ("naive: one check per open request", None, naive_rpc.calls, naive_s),
    ]
    for name, _, calls, seconds in rows:
        print(f"{name:<44} {calls:>10} {seconds:>9.2f} {calls / n:>14.3f}")
    print(
        f"\nnaive / sweep (next block): {naive_rpc.calls / second['rpc_calls']:.0f}x the calls, "
        f"{naive_s / steady_s:.1f}x the time"
    )
    print(f"reconnects after an idle close: sweep client {rpc.reconnects}, naive client {naive_rpc.reconnects}")
    print(f"settled after all checks: {len(settled)} (expected {paid + 50})")
    if len(settled) != paid + 50:
        raise SystemExit("the sweep and the checks disagree with the payments made")


if __name__ == "__main__":
    main()
