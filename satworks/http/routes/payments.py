"""/v1/payments: payment requests. The intake only records and enqueues; jobs talk to the node."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from satworks import clock
from satworks.db import payments as store
from satworks.db.engine import db_errors
from satworks.errors import Conflict, DependencyUnavailable, NotFound, ValidationFailed
from satworks.http import context as ctx
from satworks.http.enqueue import enqueue_payment_actor
from satworks.http.pagination import decode_cursor, split_page
from satworks.http.requests import json_body, json_response, path_uuid, validate
from satworks.http.routes import Route
from satworks.http.schemas import PaymentList, PaymentListQuery, PaymentOut, payment_document
from satworks.integrations.bitcoin.address import is_valid_address
from satworks.jobs.payments import CHECK, CREATE_ADDRESS
from satworks.payments.request import PaymentIn
from satworks.payments.status import PaymentStatus


async def create_payment(request: web.Request) -> web.Response:
    settings = request.app[ctx.SETTINGS]
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    spec = validate(PaymentIn, await json_body(request, max_bytes=settings.max_body_bytes), what="payment request")
    if spec.address is not None and not is_valid_address(spec.address, settings.bitcoin_network):
        raise ValidationFailed(
            f"address is not a valid {settings.bitcoin_network} address", details=[{"loc": ["address"]}]
        )
    key = request.headers.get("Idempotency-Key") or spec.idempotency_key
    now = clock.utcnow()
    payment_id = uuid.uuid4()
    row = {
        "id": payment_id,
        "app_id": app.app_id,
        "method": spec.method,
        "status": PaymentStatus.NEW if spec.address else PaymentStatus.CREATING,
        "amount_sat": spec.amount_sat,
        "required_confirmations": spec.confirmations,
        "tolerance_pct": spec.payment_tolerance,
        "monitoring_s": spec.monitoring_s,
        "address": spec.address,
        "address_supplied": spec.address is not None,
        "memo": spec.memo,
        "metadata": spec.metadata,
        "idempotency_key": key,
        "request_hash": _request_hash(spec),
        "created_at": now,
        "expires_at": now.replace(microsecond=0) + timedelta(seconds=spec.expires_in),  # whole seconds, like the node
    }
    engine = request.app[ctx.ENGINE]
    with db_errors():
        async with engine.begin() as conn:
            try:
                stored = (await conn.execute(store.insert_request(), row)).first()
            except IntegrityError as exc:
                raise Conflict("this address is already watched by another payment request") from exc
            if stored is None:
                existing = (await conn.execute(store.by_idempotency_key(app.app_id, str(key)))).first()
    if stored is None:
        if existing is None or existing.request_hash != row["request_hash"]:
            raise Conflict("idempotency key already used with a different request")
        return json_response(payment_document(existing, []), status=202, headers={"Idempotent-Replayed": "true"})
    first = (CHECK, (str(payment_id), 0)) if spec.address else (CREATE_ADDRESS, (str(payment_id),))
    try:
        await enqueue_payment_actor(request.app, *first)
    except DependencyUnavailable:  # the broker refused: undo the record
        with db_errors():
            async with engine.begin() as conn:
                await conn.execute(store.delete_unstarted(payment_id))
        raise
    return json_response(payment_document(stored, []), status=202, headers={"Location": f"/v1/payments/{payment_id}"})


async def get_payment(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    payment_id = path_uuid(request, "id", what="payment")
    with db_errors():
        async with request.app[ctx.ENGINE].connect() as conn:
            row = (await conn.execute(store.get(app.app_id, payment_id))).first()
            txids = [r.txid for r in await conn.execute(store.txids_of([payment_id]))] if row else []
    if row is None:
        raise NotFound("no such payment")
    return json_response(payment_document(row, txids))


async def list_payments(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    query = validate(PaymentListQuery, dict(request.query), what="query")
    before = decode_cursor(query.cursor) if query.cursor else None
    with db_errors():
        async with request.app[ctx.ENGINE].connect() as conn:
            rows = (
                await conn.execute(
                    store.listing(app.app_id, status=query.status, before_seq=before, limit=query.limit + 1)
                )
            ).all()
            page, cursor = split_page(rows, query.limit)
            txids: dict[Any, list[str]] = defaultdict(list)
            if page:
                for r in await conn.execute(store.txids_of([p.id for p in page])):
                    txids[r.payment_id].append(r.txid)
    return json_response(PaymentList(items=[payment_document(r, txids[r.id]) for r in page], next_cursor=cursor))


def _request_hash(spec: PaymentIn) -> str:
    body = spec.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


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
        errors=(*_ERRORS, 400, 409, 413, 415, 422),
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
