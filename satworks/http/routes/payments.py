"""/v1/payments: payment requests. The intake only records and enqueues; jobs talk to the node."""

from __future__ import annotations

from aiohttp import web

from satworks.db import payment_requests as requests_db
from satworks.errors import NotFound
from satworks.http import context as ctx
from satworks.http.pagination import decode_cursor, next_cursor
from satworks.http.requests import (
    accepted,
    idempotency_key,
    json_body,
    json_response,
    path_uuid,
    query_params,
    validate,
)
from satworks.http.route import Route
from satworks.http.schemas import PaymentList, PaymentListQuery, PaymentOut
from satworks.payments.request import PaymentIn


async def create_payment(request: web.Request) -> web.Response:
    settings = request.app[ctx.SETTINGS]
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    spec = validate(PaymentIn, await json_body(request, max_bytes=settings.max_body_bytes), what="payment request")
    key = idempotency_key(request, spec.idempotency_key)
    payment, replayed = await request.app[ctx.INTAKE].payments.create(app.app_id, spec, key)
    return accepted(PaymentOut.from_record(payment, []), f"/v1/payments/{payment.id}", replayed=replayed)


async def get_payment(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    found = await requests_db.get(request.app[ctx.ENGINE], app.app_id, path_uuid(request, "id", what="payment"))
    if found is None:
        raise NotFound("no such payment")
    return json_response(PaymentOut.from_record(*found))


async def list_payments(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    query = validate(PaymentListQuery, query_params(request), what="query")
    page = await requests_db.listing(
        request.app[ctx.ENGINE],
        app.app_id,
        status=query.status,
        before_seq=decode_cursor(query.cursor) if query.cursor else None,
        limit=query.limit,
    )
    items = [PaymentOut.from_record(payment, txids) for payment, txids in page.items]
    return json_response(PaymentList(items=items, next_cursor=next_cursor(page)))


_ERRORS = (401, 403, 404, 429, 503)
ROUTES = [
    Route(
        "POST",
        "/v1/payments",
        create_payment,
        "Create a payment request",
        PaymentOut,
        status=202,
        body=PaymentIn,
        scope="jobs",
        errors=(*_ERRORS, 400, 408, 409, 413, 415, 422),
    ),
    Route(
        "GET",
        "/v1/payments",
        list_payments,
        "List payment requests, newest first",
        PaymentList,
        query=PaymentListQuery,
        scope="jobs",
        errors=(*_ERRORS, 422),
    ),
    Route(
        "GET",
        "/v1/payments/{id}",
        get_payment,
        "Read a payment request",
        PaymentOut,
        scope="jobs",
        errors=_ERRORS,
    ),
]
