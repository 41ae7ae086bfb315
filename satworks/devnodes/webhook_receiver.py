"""``satworks devnode webhook-receiver``: a tiny webhook receiver for development that checks signatures.

satworks devnode webhook-receiver --port 8090 --secret whsec_...     # print each event, verified
satworks devnode webhook-receiver --port 8090 --secrets-file .local/webhook-secrets   # one per line, re-read
satworks devnode webhook-receiver --port 8090 --fail-first 3         # answer 500 three times first

Every POST (any path) is verified against each secret with the recipe of docs/webhooks.md, printed
as one JSON line and kept (the last 1000) for ``GET /events``. The secrets file is read again for
every POST, so a secret just shown by ``POST /v1/webhook-endpoints`` can be appended to it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from aiohttp import web

from satworks import signatures

EVENTS: web.AppKey[deque[dict[str, Any]]] = web.AppKey("events")


def create_app(
    secrets: list[str], *, fail_first: int = 0, fail_status: int = 500, secrets_file: Path | None = None
) -> web.Application:
    app = web.Application()
    seen_events: deque[dict[str, Any]] = deque(maxlen=1000)
    app[EVENTS] = seen_events
    failures = {"left": fail_first}

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        header = request.headers.get(signatures.HEADER, "")
        checked = "unchecked"
        known = [*secrets, *_read_secrets(secrets_file)]
        if known:
            checked = "bad"
            for secret in known:
                try:
                    signatures.verify(header, body, secret, now=int(time.time()), tolerance_s=300)
                except signatures.SignatureError:
                    continue
                checked = "ok"
                break
        try:
            document: Any = json.loads(body)
        except ValueError:
            document = {}
        event = document if isinstance(document, dict) else {}
        answer = fail_status if failures["left"] > 0 else 200
        failures["left"] = max(0, failures["left"] - 1)
        seen = {
            "path": request.path,
            "id": event.get("id"),
            "type": event.get("type"),
            "signature": checked,
            "answered": answer,
            "data": event.get("data"),
        }
        seen_events.append(seen)
        print(json.dumps(seen), flush=True)
        if checked == "bad":
            return web.Response(status=401, text="bad signature")
        return web.Response(status=answer, text="ok" if answer == 200 else "failing on purpose")

    async def events(request: web.Request) -> web.Response:
        return web.json_response({"events": list(seen_events)})

    app.router.add_get("/events", events)
    app.router.add_post("/{tail:.*}", receive)
    return app


def _read_secrets(path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="satworks devnode webhook-receiver", description="Receive, verify and print satworks webhooks."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--secret", action="append", default=[], help="a signing secret (repeat for several)")
    parser.add_argument("--secrets-file", type=Path, default=None, help="signing secrets, one per line (re-read)")
    parser.add_argument("--fail-first", type=int, default=0, metavar="N", help="answer --fail-status N times first")
    parser.add_argument("--fail-status", type=int, default=500)
    args = parser.parse_args(argv)
    print(f"webhook receiver on http://{args.host}:{args.port}/ (events at /events)", file=sys.stderr)
    web.run_app(
        create_app(
            args.secret, fail_first=args.fail_first, fail_status=args.fail_status, secrets_file=args.secrets_file
        ),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
