"""Lightning settlement latency: the payer's SUCCEEDED → ``settled`` visible in the API, via the invoice
stream (``satworks lnd-listener``) and via polling alone (the check chains), in one run.

Everything is a real process: ``satworks devnode lnd`` (merchant and payer), ``satworks web``, one
``satworks worker`` and ``satworks lnd-listener``, on a database and queue prefix of this run. Each
phase creates ``--n`` requests over HTTP, waits for their invoices, then pays each from the payer node
(``SendPaymentV2``) at a random moment up to ``--spread`` seconds later, as customers do; one poller
lists ``GET /v1/payments?status=settled`` every 25 ms and notes when each request first shows. Phase
``stream`` runs the listener; phase ``polling`` stops it, so only the check chains (default settings,
``SATWORKS_PAYMENT_CHECK_MIN_MS`` 2 s doubling to 60 s) can see a payment. No scheduler runs (the
minute's sweep is not measured). Usage::

    .venv/bin/python bench/lightning_settlement.py [--n 40] [--spread 10]

Touches: database ``satworks_bench_lightning_<pid>`` (dropped at the end), Redis DB 14 keys of queue
prefix ``bench_ln<pid>_`` (deleted at the end), free ports on 127.0.0.1, a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import redis

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    REDIS_URL,
    Processes,
    create_app_key,
    executable,
    free_port,
    headers,
    poll,
    recreate_database,
    satworks_env,
    wait_http_ok,
)
from satworks.integrations.lnd.client import LndClient
from satworks.integrations.lnd.records import PaymentStatus

DB = f"satworks_bench_lightning_{os.getpid()}"
PREFIX = f"bench_ln{os.getpid()}_"
POLL_S = 0.025


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class SettledWatcher:
    """One poller of the API's settled list: when each request was first seen settled (monotonic)."""

    def __init__(self, api: str, key: str) -> None:
        self._client = httpx.Client(base_url=api, headers=headers(key), timeout=5.0)
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = self._client.get("/v1/payments", params={"status": "settled", "limit": 500})
            now = time.monotonic()
            answer.raise_for_status()
            for item in answer.json()["items"]:
                self.seen.setdefault(item["id"], now)
            self._stop.wait(POLL_S)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.close()


def phase(api: str, key: str, payer: LndClient, watcher: SettledWatcher, n: int, spread_s: float) -> list[float]:
    """``n`` requests paid at random moments; the latency of each, in seconds."""
    with httpx.Client(base_url=api, headers=headers(key), timeout=10.0) as client:
        ids = []
        for i in range(n):
            body = {"method": "lightning", "amount_sat": 1_000 + i, "memo": f"bench {i}", "expires_in": 600}
            answer = client.post("/v1/payments", content=json.dumps(body))
            if answer.status_code != 202:
                raise RuntimeError(f"create: {answer.status_code} {answer.text}")
            ids.append(answer.json()["id"])

        def invoice(payment_id: str) -> str | None:
            document = client.get(f"/v1/payments/{payment_id}").json()
            return document["payment_request"] if document["status"] == "new" else None

        requests = [poll(lambda p=p: invoice(p), deadline_s=60, what="the invoice", every_s=0.1) for p in ids]

    succeeded: dict[str, float] = {}

    def pay(payment_id: str, request: str) -> None:
        time.sleep(random.uniform(0, spread_s))  # when a customer pays
        payment = payer.pay(request, timeout_s=30)
        succeeded[payment_id] = time.monotonic()
        if payment.status != PaymentStatus.SUCCEEDED:
            raise RuntimeError(f"payment {payment_id}: {payment.status} {payment.failure_reason}")

    with ThreadPoolExecutor(n) as pool:
        for future in [pool.submit(pay, p, r) for p, r in zip(ids, requests, strict=True)]:
            future.result()
    poll(lambda: all(p in watcher.seen for p in ids), deadline_s=120, what="every request settled", every_s=0.1)
    return [max(0.0, watcher.seen[p] - succeeded[p]) for p in ids]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40, help="payments per phase")
    parser.add_argument("--spread", type=float, default=10.0, help="payments fall uniformly in this many seconds")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="satworks-bench-lightning-"))
    procs = Processes(tmp)
    lnd_dir = tmp / "lnd"
    ports = {name: free_port() for name in ("http", "worker", "listener")}
    recreate_database(DB)
    env = satworks_env(
        database=DB,
        queue_prefix=PREFIX,
        http_port=str(ports["http"]),
        worker_metrics_port=str(ports["worker"]),
        lnd_listener_metrics_port=str(ports["listener"]),
        lnd_tls_cert_path=str(lnd_dir / "merchant" / "tls.cert"),
        lnd_macaroon_path=str(lnd_dir / "merchant" / "admin.macaroon"),
        log_level="WARNING",
    )
    api = f"http://127.0.0.1:{ports['http']}"
    satworks = executable("satworks")
    print(f"logs in {tmp}", flush=True)
    try:
        lnd = [satworks, "devnode", "lnd", "--port", "0", "--datadir", str(lnd_dir), "--log-level", "WARNING"]
        procs.start("lnd", lnd, env)
        merchant = poll(lambda: _node(lnd_dir / "merchant"), deadline_s=30, what="the lnd simulator", every_s=0.1)
        env["SATWORKS_LND_GRPC_HOST"] = merchant["rpcserver"]
        key = create_app_key(env)
        procs.start("web", [satworks, "web"], env)
        worker = [satworks, "worker", "--queues", "critical,default,bulk", "--processes", "1", "--threads", "8"]
        procs.start("worker", worker, env)
        procs.start("listener", [satworks, "lnd-listener"], env)
        wait_http_ok(procs, "web", f"{api}/health")
        poll(lambda: _stream_up(ports["listener"]), deadline_s=30, what="the listener to subscribe", every_s=0.1)
        payer_node = _node(lnd_dir / "payer")
        assert payer_node is not None
        payer = LndClient(
            payer_node["rpcserver"],
            tls_cert_path=payer_node["tlscertpath"],
            macaroon_path=payer_node["macaroonpath"],
            timeout_s=10,
        )
        watcher = SettledWatcher(api, key)
        try:
            phase(api, key, payer, watcher, 3, 0.5)  # warm-up: connections, first jobs
            stream = phase(api, key, payer, watcher, args.n, args.spread)
            procs.stop("listener")
            polling = phase(api, key, payer, watcher, args.n, args.spread)
        finally:
            watcher.close()
            payer.close()
        report(args.n, args.spread, stream, polling)
    finally:
        procs.stop_all()
        recreate_database(DB)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"satworks:{PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def _node(node_dir: Path) -> dict[str, str] | None:
    try:
        info: dict[str, str] = json.loads((node_dir / "node.json").read_text())
    except (OSError, ValueError):
        return None
    return info if Path(info.get("tlscertpath", "")).exists() else None


def _stream_up(port: int) -> bool:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1.0).text
    except httpx.HTTPError:
        return False
    return "satworks_lnd_stream_up 1.0" in text


def report(n: int, spread_s: float, stream: list[float], polling: list[float]) -> None:
    print(f"\nsettlement latency, payer SUCCEEDED → settled in the API ({n} payments per phase, over {spread_s} s)")
    print(f"{'via':<34} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'mean ms':>9}")
    rows = [("stream (lnd-listener + checks)", stream), ("polling alone (check chains)", polling)]
    for label, samples in rows:
        ms = [s * 1000 for s in samples]
        p50, p99 = percentile(ms, 0.5), percentile(ms, 0.99)
        print(f"{label:<34} {p50:>9.0f} {p99:>9.0f} {max(ms):>9.0f} {statistics.mean(ms):>9.0f}")
    print(
        f"\nratios polling/stream: p50 {percentile(polling, 0.5) / percentile(stream, 0.5):.1f}x,"
        f" p99 {percentile(polling, 0.99) / percentile(stream, 0.99):.1f}x;"
        f" stream p99 against the 1 s target: {percentile(stream, 0.99):.2f}"
    )


if __name__ == "__main__":
    main()
