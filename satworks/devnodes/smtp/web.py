"""The development SMTP server's HTTP side: what arrived, for people (``/``) and for tests (JSON).

``GET /messages`` (newest first) · ``GET /messages/{id}`` (headers, text, html, raw) ·
``GET /messages/{id}/raw`` (``message/rfc822``) · ``DELETE /messages`` · ``GET /stats`` (sessions now,
peak, total; messages; refusals) · ``POST /stats/reset`` (peak back to the sessions open now).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from satworks.devnodes.smtp.sink import SmtpSink

SINK: web.AppKey[SmtpSink] = web.AppKey("sink")


def create_app(sink: SmtpSink) -> web.Application:
    app = web.Application()
    app[SINK] = sink
    app.router.add_get("/", _page)
    app.router.add_get("/messages", _list)
    app.router.add_delete("/messages", _clear)
    app.router.add_get("/messages/{id}", _detail)
    app.router.add_get("/messages/{id}/raw", _raw)
    app.router.add_get("/stats", _stats)
    app.router.add_post("/stats/reset", _reset)
    return app


async def _list(request: web.Request) -> web.Response:
    messages = request.app[SINK].store.all()
    return web.json_response({"messages": [m.summary() for m in reversed(messages)]})


async def _detail(request: web.Request) -> web.Response:
    stored = request.app[SINK].store.get(request.match_info["id"])
    if stored is None:
        return _not_found()
    return web.json_response(stored.detail())


async def _raw(request: web.Request) -> web.Response:
    stored = request.app[SINK].store.get(request.match_info["id"])
    if stored is None:
        return _not_found()
    return web.Response(body=stored.raw, content_type="message/rfc822")


async def _clear(request: web.Request) -> web.Response:
    request.app[SINK].store.clear()
    return web.Response(status=204)


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SINK].stats())


async def _reset(request: web.Request) -> web.Response:
    sink = request.app[SINK]
    sink.sessions.reset()
    return web.json_response(sink.stats())


async def _page(request: web.Request) -> web.Response:
    rows = "".join(
        (
            "<tr><td><a href='/messages/{id}'>{id}</a></td><td>{at}</td>"
            "<td>{frm}</td><td>{to}</td><td>{subject}</td></tr>"
        ).format(
            id=html.escape(s["id"]),
            at=html.escape(s["received_at"][:19]),
            frm=html.escape(s["mail_from"]),
            to=html.escape(", ".join(s["rcpt_tos"])),
            subject=html.escape(str(s["subject"] or "")),
        )
        for s in (m.summary() for m in reversed(request.app[SINK].store.all()))
    )
    body = (
        "<!doctype html><meta charset='utf-8'><meta http-equiv='refresh' content='5'>"
        "<title>satworks devnode smtp</title><h1>Received messages</h1>"
        "<table border='1' cellpadding='4'><tr><th>id</th><th>received</th><th>from</th><th>to</th>"
        f"<th>subject</th></tr>{rows}</table>"
    )
    return web.Response(text=body, content_type="text/html")


def _not_found() -> web.Response:
    error = {"code": "not_found", "message": "no such message", "details": None}
    return web.json_response({"error": error}, status=404)
