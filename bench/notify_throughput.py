"""Notification throughput: webhook POSTs/s through ``WebhookSender`` and emails/s through the SMTP client,
each beside a raw baseline measured in the same run (plain aiohttp POSTs; plain ``smtplib``).

The receiver (a bare aiohttp app) and the SMTP sink (``satworks devnode smtp``) run in their own
processes on 127.0.0.1. Both sides of each pair do the same work over the same sockets: the
webhook pair POSTs the same JSON to ``localhost`` (so both resolve a name) with the same concurrency,
the email pair sends the same prebuilt message with one SMTP session per email from the same number
of threads (the default cap, 5). Runs alternate baseline/satworks twice; the best of each counts.
Touches no database and no Redis. Usage:

    .venv/bin/python bench/notify_throughput.py [--webhooks 3000] [--concurrency 32] [--emails 1000] [--threads 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from satworks import clock
from satworks.emails.message import build_message, message_id
from satworks.emails.templates import EmailTemplates
from satworks.integrations.smtp.client import SmtpConfig, send
from satworks.integrations.webhooks.guard import AddressPolicy
from satworks.integrations.webhooks.outcome import Outcome
from satworks.integrations.webhooks.sender import WebhookSender
from satworks.webhooks.events import WebhookEvent

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_bench_" + "s" * 24
RECEIVER = """
import sys
from aiohttp import web
async def hook(request):
    await request.read()
    return web.Response(text="ok")
app = web.Application()
app.router.add_post("/hook", hook)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, deadline_s: float = 20) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # bounded by the deadline
    raise SystemExit(f"nothing listens on {port}")


async def raw_posts(url: str, body: bytes, n: int, concurrency: int) -> Figures:
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as answer:
                await answer.read()
                if answer.status != 200:
                    raise SystemExit(f"baseline POST answered {answer.status}")

        return await _timed(one, n, concurrency)


async def sender_posts(url: str, body: bytes, n: int, concurrency: int) -> Figures:
    policy = AddressPolicy.of(["127.0.0.0/8", "::1/128"])  # the quick start's allow-list
    async with WebhookSender(policy=policy) as sender:

        async def one() -> None:
            attempt = await sender.deliver(url, body, [SECRET])
            if attempt.outcome is not Outcome.DELIVERED:
                raise SystemExit(f"sender attempt failed: {attempt}")

        return await _timed(one, n, concurrency)


async def _timed(one: Any, n: int, concurrency: int) -> Figures:
    queue = iter(range(n))

    async def lane() -> None:
        for _ in queue:
            await one()

    for _ in range(concurrency):  # warm the pool and the DNS cache
        await one()
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return _figures(n, started, cpu)


def raw_smtp(port: int, message: Any, n: int, threads: int) -> Figures:
    def one(_: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.local", timeout=30) as client:
            client.send_message(message)

    return _threaded(one, n, threads)


def client_smtp(port: int, message: Any, n: int, threads: int) -> Figures:
    config = SmtpConfig(host="127.0.0.1", port=port, helo_name="bench.local")
    return _threaded(lambda _: send(config, message), n, threads)


def _threaded(one: Any, n: int, threads: int) -> Figures:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(threads)))  # warm-up
        started, cpu = time.perf_counter(), time.process_time()
        list(pool.map(one, range(n)))
        return _figures(n, started, cpu)


def _figures(n: int, started: float, cpu: float) -> Figures:
    """Rate (per wall second) and this process's CPU per item: the CPU figure moves less on a busy machine."""
    return Figures(n / (time.perf_counter() - started), (time.process_time() - cpu) / n * 1e6)


@dataclass(frozen=True)
class Figures:
    rate: float
    cpu_us: float


def sink_stats(http_port: int, reset: bool = False) -> dict[str, int]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/stats" + ("/reset" if reset else ""), method="POST" if reset else "GET"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(json.loads(answer.read()))


def _table(results: dict[str, list[Figures]]) -> None:
    for name, runs in results.items():
        best = max(r.rate for r in runs)
        cpu = min(r.cpu_us for r in runs)
        detail = ", ".join(f"{r.rate:.0f}/s {r.cpu_us:.0f} us" for r in runs)
        print(f"  {name:14s} {best:8.0f} /s  {cpu:6.0f} us CPU each   (runs: {detail})")


def _ratios(ours: list[Figures], base: list[Figures]) -> str:
    rate = max(r.rate for r in ours) / max(r.rate for r in base)
    cpu = min(r.cpu_us for r in ours) / min(r.cpu_us for r in base)
    return f"rate x{rate:.2f}, CPU per item x{cpu:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=5)
    args = parser.parse_args()

    hook_port, smtp_port, sink_http = free_port(), free_port(), free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(hook_port)])
    sink = subprocess.Popen(
        [sys.executable, "-m", "satworks.cli", "devnode", "smtp", "--port", str(smtp_port), "--http-port",
         str(sink_http), "--max-messages", "50", "--log-level", "WARNING"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(hook_port)
        wait_port(smtp_port)
        url = f"http://localhost:{hook_port}/hook"
        event = WebhookEvent(f"evt_{uuid.uuid4().hex[:8]}", "payment.settled", clock.utcnow(), {"amount_sat": 125_000})
        body = event.body()
        hooks: dict[str, list[Figures]] = {"raw aiohttp": [], "WebhookSender": []}
        for _ in range(2):
            hooks["raw aiohttp"].append(asyncio.run(raw_posts(url, body, args.webhooks, args.concurrency)))
            hooks["WebhookSender"].append(asyncio.run(sender_posts(url, body, args.webhooks, args.concurrency)))

        templates = EmailTemplates()
        context = {"customer_name": "Ann", "amount_sat": 125_000, "payment_id": "p-1", "memo": "order 1001"}
        started = time.perf_counter()
        renders = 500
        for i in range(renders):
            message = build_message(
                templates.render("payment_settled", context),
                sender="Shop <noreply@shop.example.com>",
                to=["alice@example.com"],
                message_id=message_id(f"bench-{i}", "shop.example.com"),
            )
        render_rate = renders / (time.perf_counter() - started)
        raw = message.as_bytes()
        sink_stats(sink_http, reset=True)
        mails: dict[str, list[Figures]] = {"raw smtplib": [], "smtp client": []}
        for _ in range(2):
            mails["raw smtplib"].append(raw_smtp(smtp_port, message, args.emails, args.threads))
            mails["smtp client"].append(client_smtp(smtp_port, message, args.emails, args.threads))
        stats = sink_stats(sink_http)
    finally:
        receiver.terminate()
        sink.terminate()
        receiver.wait(timeout=10)
        sink.wait(timeout=10)

    print(f"webhooks: {args.webhooks} POSTs x2 per side, {args.concurrency} concurrent, {len(body)} B body")
    _table(hooks)
    print(f"  WebhookSender / raw aiohttp: {_ratios(hooks['WebhookSender'], hooks['raw aiohttp'])}")
    print(f"emails: {args.emails} x2 per side, {args.threads} threads, one SMTP session per email, {len(raw)} B")
    _table(mails)
    print(f"  smtp client / raw smtplib: {_ratios(mails['smtp client'], mails['raw smtplib'])}")
    print(f"  sink: peak {stats['sessions_peak']} simultaneous sessions, {stats['sessions_total']} sessions")
    print(f"templates: render + build payment_settled: {render_rate:.0f} /s (one thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
