"""The players' page of a draw: no API key, reached through an unguessable link (``/p/draws/<token>``).

The token (128 random bits, ``secrets.token_urlsafe(16)``) is the only capability: whoever has the
link sees the draw's public facts and proof, never its emails or metadata. A completed draw's page
is the browser verifier (``static/draws/verify.html``, shipped in the package, no CDN) pointed at the
proof beside it; before that, a page with the commitment and the beacon block to wait for.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

import jinja2
from aiohttp import web

from satworks.db import draws as draws_db
from satworks.db.draws import DrawRecord, public_path
from satworks.draws import DrawProof
from satworks.draws.status import DrawStatus
from satworks.errors import NotFound
from satworks.http import context as ctx
from satworks.http.route import Route
from satworks.http.routes.draws import proof_response

TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")
HEADERS = {
    # verify.js only, the proof from this origin only, the page's own inline styles; nothing else.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-cache",
}


@functools.cache
def _static(name: str) -> str:
    return resources.files("satworks.http").joinpath("static", "draws", name).read_text(encoding="utf-8")


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("satworks.http", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
    )


async def verify_script(request: web.Request) -> web.Response:
    return web.Response(text=_static("verify.js"), content_type="text/javascript", headers=HEADERS)


async def draw_page(request: web.Request) -> web.Response:
    draw = await _draw(request)
    if draw.status == DrawStatus.COMPLETED:
        link = f'<link rel="satworks-proof" href="{public_path(draw.public_token)}/proof.json">\n'
        html = _static("verify.html").replace("</head>", link + "</head>", 1)
        html = html.replace("<title>Verify a raffle draw</title>", "<title>Verify the raffle draw</title>", 1)
    else:
        html = (
            _templates()
            .get_template("draw_pending.html")
            .render(
                raffle_id=draw.raffle_id,
                status=str(draw.status),
                reason=draw.status_reason or "",
                draw_id=str(draw.id),
                commitment=draw.commitment,
                algorithm=draw.algorithm,
                network=draw.network,
                height=draw.beacon_height,
                confirmations=draw.required_confirmations,
                block_hash=draw.block_hash,
                seen_confirmations=draw.block_confirmations,
                entries_count=draw.entries_count,
                total_tickets=draw.total_tickets,
                k=draw.k,
            )
        )
    return web.Response(text=html, content_type="text/html", headers=HEADERS)


async def public_proof(request: web.Request) -> web.Response:
    draw = await _draw(request)
    response = await proof_response(request, draw, filename=f"draw-{draw.id}-proof.json")
    response.headers.update(HEADERS)
    return response


async def _draw(request: web.Request) -> DrawRecord:
    token = request.match_info["token"]
    draw = await draws_db.by_token(request.app[ctx.ENGINE], token) if TOKEN.match(token) else None
    if draw is None:
        raise NotFound("no such draw")
    return draw


ROUTES = [
    # Before /p/draws/{token}: "verify.js" would match it too, and routes match in order.
    Route(
        "GET",
        "/p/draws/verify.js",
        verify_script,
        "The browser verifier (docs/draws.md in JavaScript)",
        None,
        content_type="text/javascript",
    ),
    Route(
        "GET",
        "/p/draws/{token}",
        draw_page,
        "A draw's public page: its commitment, then its verification (no API key)",
        None,
        content_type="text/html",
        errors=(404, 503),
    ),
    Route(
        "GET",
        "/p/draws/{token}/proof.json",
        public_proof,
        "A completed draw's proof, for its public page (no API key)",
        DrawProof,
        errors=(404, 409, 503),
    ),
]
