"""``satworks devnode smtp``: run the development SMTP server, or list what a running one received.

satworks devnode smtp                         # SMTP on 127.0.0.1:1025, listing on http://127.0.0.1:8025
satworks devnode smtp --maildir .local/mail   # also keep every message as an .eml file
satworks devnode smtp --list                  # what the running server received, newest first
satworks devnode smtp --show 3                # one message: headers and text part
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from satworks import logs
from satworks.devnodes.smtp.sink import DEFAULT_REPLIES, Reply, SinkConfig, SmtpSink


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="satworks devnode smtp", description="Development SMTP server that keeps and lists what it receives."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025, help="SMTP port")
    parser.add_argument("--http-port", type=int, default=8025, help="HTTP listing port")
    parser.add_argument("--maildir", type=Path, default=None, help="also write each message to DIR/<time>-<id>.eml")
    parser.add_argument("--max-messages", type=int, default=1000, help="messages kept in memory")
    parser.add_argument("--delay-ms", type=int, default=0, help="wait this long before answering DATA")
    parser.add_argument(
        "--reply",
        action="append",
        default=[],
        metavar="RCPT=CODE",
        help="answer CODE for a local part or address at RCPT (or at DATA with data:CODE), e.g. busy=452",
    )
    parser.add_argument("--tls-cert", type=Path, default=None, help="certificate (PEM): enables STARTTLS")
    parser.add_argument("--tls-key", type=Path, default=None)
    parser.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte instead of STARTTLS")
    parser.add_argument("--auth", default=None, metavar="USER:PASSWORD", help="require AUTH (needs TLS)")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--list", action="store_true", help="list the running server's messages and exit")
    parser.add_argument("--show", default=None, metavar="ID", help="print one message of the running server and exit")
    args = parser.parse_args(argv)

    if args.list or args.show:
        sys.exit(_client(args))
    logs.configure(args.log_level)
    try:
        config = SinkConfig(
            replies={**DEFAULT_REPLIES, **dict(_reply_rule(rule) for rule in args.reply)},
            delay_s=args.delay_ms / 1000,
            max_messages=args.max_messages,
            maildir=args.maildir,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            implicit_tls=args.implicit_tls,
            auth=tuple(args.auth.split(":", 1)) if args.auth else None,
        )
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(_serve(config, args.host, args.port, args.http_port))


def _reply_rule(rule: str) -> tuple[str, Reply]:
    key, _, value = rule.partition("=")
    stage, _, code = value.rpartition(":")
    if not key or not code.isdigit() or not 400 <= int(code) < 600 or stage not in ("", "data"):
        raise SystemExit(f"--reply {rule!r}: expected RCPT=CODE or RCPT=data:CODE with a 4xx or 5xx code")
    text = "4.0.0 Deferred (devnode rule)" if code.startswith("4") else "5.0.0 Refused (devnode rule)"
    return key.lower(), Reply(int(code), text, stage or "rcpt")


async def _serve(config: SinkConfig, host: str, port: int, http_port: int) -> None:
    sink = SmtpSink(config)
    await sink.start(host, port, http_port)
    print(f"satworks devnode smtp: SMTP on {host}:{sink.smtp_port}, messages at http://{host}:{sink.http_port}/")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sink.stop()


def _client(args: argparse.Namespace) -> int:
    base = f"http://{args.host}:{args.http_port}"
    try:
        if args.show:
            message = _get(f"{base}/messages/{args.show}")
            for name, value in message["headers"]:
                print(f"{name}: {value}")
            print()
            print(message["text"] if message["text"] is not None else message["raw"])
            return 0
        for m in _get(f"{base}/messages")["messages"]:
            print(f"{m['id']}\t{m['received_at'][:19]}\t{m['mail_from']} -> {', '.join(m['rcpt_tos'])}\t{m['subject']}")
        return 0
    except urllib.error.HTTPError as exc:
        print(f"error: {exc.code} from {base}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"error: no devnode smtp at {base} ({exc})", file=sys.stderr)
    return 1


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - a URL we built, http only
        return json.loads(answer.read())
