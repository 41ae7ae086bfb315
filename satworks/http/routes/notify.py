"""/v1/webhook-endpoints, /v1/webhook-deliveries and /v1/emails. An app only ever sees its own."""

from __future__ import annotations

from aiohttp import web

from satworks.db import emails as emails_db
from satworks.db import webhook_deliveries as deliveries_db
from satworks.db import webhook_endpoints as endpoints_db
from satworks.errors import NotFound
from satworks.http import context as ctx
from satworks.http.notify_schemas import (
    DeliveryDetail,
    DeliveryList,
    DeliveryListQuery,
    DeliveryOut,
    EmailIn,
    EmailList,
    EmailListQuery,
    EmailOut,
    EndpointDeleted,
    EndpointIn,
    EndpointList,
    EndpointOut,
    EndpointWithSecret,
)
from satworks.http.pagination import decode_cursor, next_cursor
from satworks.http.requests import accepted, idempotency_key, json_body, json_response, path_uuid, validate
from satworks.http.route import Route

SCOPE = "jobs"


async def create_endpoint(request: web.Request) -> web.Response:
    settings = request.app[ctx.SETTINGS]
    app = await request.app[ctx.AUTH].authenticate(request, SCOPE)
    spec = validate(EndpointIn, await json_body(request, max_bytes=settings.max_body_bytes), what="webhook endpoint")
    endpoint, secret = await request.app[ctx.INTAKE].webhooks.register(app.app_id, spec.url, spec.events)
    headers = {"Location": f"/v1/webhook-endpoints/{endpoint.id}"}
    return json_response(EndpointWithSecret.with_secret(endpoint, secret), status=201, headers=headers)


async def list_endpoints(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, SCOPE)
    found = await endpoints_db.listing(request.app[ctx.ENGINE], app.app_id)
    return json_response(EndpointList(items=[EndpointOut.from_record(e) for e in found]))


async def get_endpoint(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, SCOPE)
    endpoint_id = path_uuid(request, "id", what="webhook endpoint")
    return json_response(
        EndpointOut.from_record(await endpoints_db.get(request.app[ctx.ENGINE], app.app_id, endpoint_id))
    )


async def delete_endpoint(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, SCOPE)
    endpoint_id = path_uuid(request, "id", what="webhook endpoint")
    failed = await request.app[ctx.INTAKE].webhooks.delete(app.app_id, endpoint_id)
    return json_response(EndpointDeleted(failed_deliveries=failed))


async def rotate_secret(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, SCOPE)
    endpoint_id = path_uuid(request, "id", what="webhook endpoint")
    endpoint, secret = await request.app[ctx.INTAKE].webhooks.rotate(app.app_id, endpoint_id)
    return json_response(EndpointWithSecret.with_secret(endpoint, secret))


async def list_deliveries(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, SCOPE)
    query = validate(DeliveryListQuery, dict(request.query), what="query")
    page = await deliveries_db.listing(
        request.app[ctx.ENGINE],
        app.app_id,
        status=query.status,
        endpoint_id=query.endpoint_id,
        before_seq=decode_cursor(query.cursor) if query.cursor else None,
        limit=query.limit,
    )
    items = [DeliveryOut.from_record(d) for d in page.items]
    return json_response(DeliveryList(items=items, next_cursor=next_cursor(page)))


async def get_delivery(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, SCOPE)
    delivery_id = path_uuid(request, "id", what="webhook delivery")
    delivery, attempts = await deliveries_db.get(request.app[ctx.ENGINE], app.app_id, delivery_id)
    return json_response(DeliveryDetail.with_history(delivery, attempts))


async def redeliver(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, SCOPE)
    delivery_id = path_uuid(request, "id", what="webhook delivery")
    delivery = await request.app[ctx.INTAKE].webhooks.redeliver(app.app_id, delivery_id)
    return accepted(DeliveryOut.from_record(delivery), f"/v1/webhook-deliveries/{delivery.id}", replayed=False)


async def create_email(request: web.Request) -> web.Response:
    settings = request.app[ctx.SETTINGS]
    app = await request.app[ctx.AUTH].authenticate(request, SCOPE)
    spec = validate(EmailIn, await json_body(request, max_bytes=settings.max_body_bytes), what="email")
    key = idempotency_key(request, spec.idempotency_key)
    email, replayed = await request.app[ctx.INTAKE].emails.submit(app.app_id, spec, key)
    return accepted(EmailOut.from_record(email), f"/v1/emails/{email.id}", replayed=replayed)


async def get_email(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, SCOPE)
    email = await emails_db.get(request.app[ctx.ENGINE], app.app_id, path_uuid(request, "id", what="email"))
    if email is None:
        raise NotFound("no such email")
    return json_response(EmailOut.from_record(email))


async def list_emails(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, SCOPE)
    query = validate(EmailListQuery, dict(request.query), what="query")
    page = await emails_db.listing(
        request.app[ctx.ENGINE],
        app.app_id,
        status=query.status,
        before_seq=decode_cursor(query.cursor) if query.cursor else None,
        limit=query.limit,
    )
    return json_response(EmailList(items=[EmailOut.from_record(e) for e in page.items], next_cursor=next_cursor(page)))


_ERRORS = (401, 403, 404, 429, 503)
_BODY = (400, 413, 415, 422)
ROUTES = [
    Route(
        "POST",
        "/v1/webhook-endpoints",
        create_endpoint,
        "Register a webhook endpoint (its signing secret is shown once)",
        EndpointWithSecret,
        status=201,
        body=EndpointIn,
        scope=SCOPE,
        errors=(*_ERRORS, *_BODY, 409),
    ),
    Route(
        "GET",
        "/v1/webhook-endpoints",
        list_endpoints,
        "List webhook endpoints",
        EndpointList,
        scope=SCOPE,
        errors=_ERRORS,
    ),
    Route(
        "GET",
        "/v1/webhook-endpoints/{id}",
        get_endpoint,
        "Read a webhook endpoint",
        EndpointOut,
        scope=SCOPE,
        errors=_ERRORS,
    ),
    Route(
        "DELETE",
        "/v1/webhook-endpoints/{id}",
        delete_endpoint,
        "Delete a webhook endpoint",
        EndpointDeleted,
        scope=SCOPE,
        errors=_ERRORS,
    ),
    Route(
        "POST",
        "/v1/webhook-endpoints/{id}/rotate-secret",
        rotate_secret,
        "New signing secret; the old one signs too for SATWORKS_WEBHOOK_SECRET_OVERLAP_S",
        EndpointWithSecret,
        scope=SCOPE,
        errors=_ERRORS,
    ),
    Route(
        "GET",
        "/v1/webhook-deliveries",
        list_deliveries,
        "List webhook deliveries, newest first",
        DeliveryList,
        query=DeliveryListQuery,
        scope=SCOPE,
        errors=(*_ERRORS, 422),
    ),
    Route(
        "GET",
        "/v1/webhook-deliveries/{id}",
        get_delivery,
        "Read a delivery and its attempts",
        DeliveryDetail,
        scope=SCOPE,
        errors=_ERRORS,
    ),
    Route(
        "POST",
        "/v1/webhook-deliveries/{id}/redeliver",
        redeliver,
        "Attempt a delivery again now",
        DeliveryOut,
        status=202,
        scope=SCOPE,
        errors=(*_ERRORS, 409),
    ),
    Route(
        "POST",
        "/v1/emails",
        create_email,
        "Send an email (from a template or given content)",
        EmailOut,
        status=202,
        body=EmailIn,
        scope=SCOPE,
        errors=(*_ERRORS, *_BODY, 409),
    ),
    Route(
        "GET",
        "/v1/emails",
        list_emails,
        "List emails, newest first",
        EmailList,
        query=EmailListQuery,
        scope=SCOPE,
        errors=(*_ERRORS, 422),
    ),
    Route("GET", "/v1/emails/{id}", get_email, "Read an email", EmailOut, scope=SCOPE, errors=_ERRORS),
]
