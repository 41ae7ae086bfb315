"""Baseline A: the cheapest useful aiohttp intake, one process, plain asyncio (as ``satworks web``).

It parses the JSON body, checks that an Authorization header is present and answers 202 with a
small JSON document. ``satworks web`` is measured against this with the same wrk load.

    .venv/bin/python bench/baseline_aiohttp.py --port 8089
"""

from __future__ import annotations

import argparse
import uuid

from aiohttp import web


async def create_job(request: web.Request) -> web.Response:
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return web.json_response({"error": "unauthorized"}, status=401)
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return web.json_response({"error": "invalid job request"}, status=422)
    return web.json_response({"id": str(uuid.uuid4()), "type": body["type"], "status": "queued"}, status=202)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/jobs", create_job)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
