"""Notifications end to end through the job machinery: webhook deliveries/s to a local receiver and
emails/s to the SMTP sink at the session cap, each beside a plain baseline measured in the same run.

Processes: ``satworks web``, one ``satworks worker`` (default and bulk queues), ``satworks devnode smtp``
and ``satworks devnode webhook-receiver``, on their own database (``satworks_bench_notify_<pid>``) and
queue prefix. Webhooks: N app events are inserted in one transaction for an app with E endpoints
subscribed to them; timed from the commit until every delivery is ``delivered`` (each attempt a row,
signed, through the SSRF guard; one pump per endpoint, in event order). Baseline: the same number of
POSTs with a plain aiohttp client, one sequential stream per endpoint. Emails: M ``POST /v1/emails``,
timed from the first request until every row is ``sent``; baseline: ``smtplib`` sending M messages to
the same sink from as many threads as the cap. The sink reports its peak of simultaneous sessions.

    .venv/bin/python bench/notify_e2e.py [--events 500] [--endpoints 4] [--emails 300] [--cap 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import smtplib
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import psycopg

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    PG_SERVER,
    Processes,
    create_app_key,
    executable,
    free_port,
    poll,
    recreate_database,
    satworks_cli,
    satworks_env,
    wait_http_ok,
)
from satworks.webhooks.secrets import new_key

DB = f"satworks_bench_notify_{os.getpid()}"


def count(dsn: str, query: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0


async def baseline_posts(url: str, n: int, streams: int) -> float:
    body = json.dumps({"id": "evt_0", "type": "job.succeeded", "data": {}}).encode()
    async with aiohttp.ClientSession() as session:

        async def stream(k: int) -> None:
            for _ in range(k):
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as answer:
                    await answer.read()

        started = time.perf_counter()
        await asyncio.gather(*(stream(n // streams) for _ in range(streams)))
        return time.perf_counter() - started


def baseline_smtp(port: int, n: int, threads: int) -> float:
    def send(i: int) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "bench@example.org", f"b{i}@example.org", "baseline"
        message.set_content("baseline body")
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.send_message(message)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(n)))
    return time.perf_counter() - started


async def post_emails(api: str, key: str, n: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            body = {"to": [f"user{i}@example.org"], "template": "generic", "context": _generic(i)}
            async with session.post(f"{api}/v1/emails", json=body, headers=headers) as answer:
                if answer.status != 202:
                    raise RuntimeError(f"POST /v1/emails: {answer.status} {await answer.text()}")

        for start in range(0, n, 50):
            await asyncio.gather(*(one(i) for i in range(start, min(n, start + 50))))


def _generic(i: int) -> dict[str, object]:
    return {"subject": f"Bench {i}", "body": "A benchmark email."}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--emails", type=int, default=300)
    parser.add_argument("--cap", type=int, default=5)
    args = parser.parse_args()

    ports = {name: free_port() for name in ("web", "smtp", "smtp_http", "receiver", "metrics")}
    env = satworks_env(
        database=DB,
        queue_prefix=f"bnotify{os.getpid()}_",
        http_port=str(ports["web"]),
        worker_metrics_port=str(ports["metrics"]),
        webhook_secret_key=new_key(),
        webhook_allowed_networks='["127.0.0.0/8"]',
        smtp_port=str(ports["smtp"]),
        smtp_max_sessions=str(args.cap),
        log_level="WARNING",
    )
    dsn = f"{PG_SERVER}/{DB}"
    api = f"http://127.0.0.1:{ports['web']}"
    receiver = f"http://127.0.0.1:{ports['receiver']}"
    recreate_database(DB, create=True)
    procs = Processes(Path(tempfile.mkdtemp(prefix="satworks-bench-notify-")))
    try:
        key = create_app_key(env)
        sw = executable("satworks")
        procs.start("web", [sw, "web"], env)
        procs.start("worker", [sw, "worker", "--queues", "default,bulk", "--processes", "1", "--threads", "8"], env)
        smtp_args = ["--port", str(ports["smtp"]), "--http-port", str(ports["smtp_http"]), "--max-messages", "100000"]
        procs.start("smtp", [sw, "devnode", "smtp", *smtp_args], env)
        procs.start("receiver", [sw, "devnode", "webhook-receiver", "--port", str(ports["receiver"])], env)
        wait_http_ok(procs, "web", f"{api}/health")
        poll(lambda: _up(f"http://127.0.0.1:{ports['smtp_http']}/stats"), deadline_s=30, what="smtp sink")
        poll(lambda: _up(f"{receiver}/events"), deadline_s=30, what="receiver")
        time.sleep(2)  # the worker's listener connects (it dispatches what it missed anyway)

        # --- webhooks ---------------------------------------------------------------------------
        for e in range(args.endpoints):
            satworks_cli(env, "webhooks", "add", "--app", "bench", "--url", f"{receiver}/e{e}", "--events", "job.*")
        total = args.events * args.endpoints
        started = time.perf_counter()
        with psycopg.connect(dsn) as conn:
            conn.execute(
                "INSERT INTO app_events (app_id, type, subject_id, data) SELECT a.id, 'job.succeeded',"
                " gen_random_uuid(), jsonb_build_object('n', g) FROM apps a, generate_series(1, %s) g"
                " WHERE a.name = 'bench'",
                (args.events,),
            )
        done_q = "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'"
        poll(lambda: count(dsn, done_q) >= total or None, deadline_s=600, what="deliveries", every_s=0.2)
        hooks_s = time.perf_counter() - started
        base_s = asyncio.run(baseline_posts(f"{receiver}/base", total, args.endpoints))
        attempts = count(dsn, "SELECT count(*) FROM webhook_attempts")

        # --- emails -----------------------------------------------------------------------------
        urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{ports['smtp_http']}/stats/reset", method="POST"), timeout=10
        ).read()
        started = time.perf_counter()
        asyncio.run(post_emails(api, key, args.emails))
        sent_q = "SELECT count(*) FROM emails WHERE status = 'sent'"
        poll(lambda: count(dsn, sent_q) >= args.emails or None, deadline_s=600, what="emails sent", every_s=0.2)
        mail_s = time.perf_counter() - started
        stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ports['smtp_http']}/stats", timeout=10).read())
        mail_base_s = baseline_smtp(ports["smtp"], args.emails, args.cap)
    finally:
        procs.stop_all()
        recreate_database(DB)

    print(f"\nwebhooks: {args.events} events x {args.endpoints} endpoints = {total} deliveries ({attempts} attempts)")
    print(f"  satworks (event commit -> all delivered): {hooks_s:6.2f} s  {total / hooks_s:8.0f} deliveries/s")
    print(f"  baseline (plain aiohttp, {args.endpoints} streams):   {base_s:6.2f} s  {total / base_s:8.0f} POSTs/s")
    print(f"  ratio satworks/baseline: {base_s / hooks_s:.2f}")
    print(f"emails: {args.emails}, cap {args.cap} sessions; sink peak sessions {stats['sessions_peak']}")
    print(f"  satworks (POST /v1/emails -> all sent):   {mail_s:6.2f} s  {args.emails / mail_s:8.0f} emails/s")
    mail_rate = args.emails / mail_base_s
    print(f"  baseline (smtplib, {args.cap} threads):          {mail_base_s:6.2f} s  {mail_rate:8.0f} emails/s")
    print(f"  ratio satworks/baseline: {mail_base_s / mail_s:.2f}")
    return 0 if stats["sessions_peak"] <= args.cap else 1


def _up(url: str) -> bool | None:
    try:
        urllib.request.urlopen(url, timeout=2).read()
    except OSError:
        return None
    return True


if __name__ == "__main__":
    sys.exit(main())
