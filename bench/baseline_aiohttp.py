"""Baseline A: the cheapest useful aiohttp intake, plain asyncio (as ``satworks web``).

It parses the JSON body, checks that an Authorization header is present and answers 202 with a
small JSON document. ``satworks web`` is measured against this with the same wrk load.
``--processes N`` forks N copies on one port with ``SO_REUSEPORT``, as ``satworks web --processes N``.

    .venv/bin/python bench/baseline_aiohttp.py --port 8089 [--processes N]
"""

from __future__ import annotations

import argparse
import multiprocessing
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
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    if args.processes == 1:
        web.run_app(make_app(), host=args.host, port=args.port, access_log=None, print=None)
        return
    fork = multiprocessing.get_context("fork")
    children = [
        fork.Process(target=serve_shared, args=(args.host, args.port), daemon=True) for _ in range(args.processes)
    ]
    for child in children:
        child.start()
    for child in children:  # the bench stops the whole process group
        child.join()


def serve_shared(host: str, port: int) -> None:
    web.run_app(make_app(), host=host, port=port, reuse_port=True, access_log=None, print=None)


if __name__ == "__main__":
    main()
