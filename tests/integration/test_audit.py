"""The audit trail through HTTP: a row for each kind, filters, admin scope, no key material or
payment address in it, and append-only in the database itself."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from satworks.settings import Settings
from tests.integration.ops_helpers import NamedApp, new_app, revoke_app
from tests.integration.payments_stack import PaymentStack
from tests.support import db_dsn


@pytest.fixture
def admin(settings: Settings) -> NamedApp:
    return new_app(settings, admin=True, prefix="ops")


async def audit(client: TestClient[Any, Any], admin: NamedApp, **query: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/audit", params=query, headers=admin.auth)
    assert response.status == 200, await response.text()
    items: list[dict[str, Any]] = (await response.json())["items"]
    return items


async def test_key_creation_and_revocation_are_audited_without_the_key(
    client: TestClient[Any, Any], settings: Settings, admin: NamedApp
) -> None:
    app = new_app(settings)
    revoke_app(settings, app.name)
    response = await client.get("/v1/audit", params={"app": app.name}, headers=admin.auth)
    text = await response.text()
    rows = (await response.json())["items"]
    assert [(r["kind"], r["app"], r["actor"]) for r in rows] == [
        ("key_revoked", app.name, "cli"),
        ("key_created", app.name, "cli"),
    ]
    assert rows[1]["data"] == {"name": app.name, "scopes": ["jobs"], "rate_limit_per_minute": None}
    assert app.key not in text and app.key.split("_")[2] not in text
    revoked = {**app.auth, "X-Forwarded-For": f"10.{uuid.uuid4().int % 250}.8.8"}
    assert (await client.get("/v1/jobs", headers=revoked)).status == 401


async def test_a_failed_authentication_is_audited_with_the_client_address_and_nothing_it_presented(
    client: TestClient[Any, Any], admin: NamedApp
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    address = f"10.{uuid.uuid4().int % 250}.7.7"
    forged = "sw_abcdefabcdef_" + uuid.uuid4().hex
    for headers in ({"Authorization": f"Bearer {forged}"}, {}):
        response = await client.get("/v1/jobs", headers={**headers, "X-Forwarded-For": address})
        assert response.status == 401
    response = await client.get(
        "/v1/audit", params={"kind": "auth_failed", "since": since.isoformat()}, headers=admin.auth
    )
    mine = [r for r in (await response.json())["items"] if r["client_address"] == address]
    assert [(r["actor"], r["app"], r["data"]) for r in mine] == [
        ("anonymous", None, {"reason": "missing key"}),
        ("anonymous", None, {"reason": "invalid key"}),
    ]
    assert forged.split("_")[2] not in await response.text()


async def test_a_webhook_with_a_wrong_node_token_or_signature_is_audited_without_what_it_presented(
    stack: PaymentStack, admin: NamedApp
) -> None:
    client = stack.client
    since = datetime.now(UTC) - timedelta(seconds=1)
    address = f"10.{uuid.uuid4().int % 250}.9.9"
    forged = uuid.uuid4().hex
    node = await client.post(
        "/v1/webhooks/bitcoind/blocknotify?blockhash=" + "0" * 64,
        headers={"X-Satworks-Node-Token": forged, "X-Forwarded-For": address},
    )
    watcher = await client.post(
        "/v1/webhooks/payments",
        data=b'{"id": "evt", "event": "payment.confirmed", "data": {}}',
        headers={"X-Satworks-Signature": f"t=1,v1={forged}", "X-Forwarded-For": address},
    )
    assert (node.status, watcher.status) == (401, 401)
    rows = await audit(client, admin, kind="auth_failed", since=since.isoformat())
    mine = [r for r in rows if r["client_address"] == address]
    assert [(r["actor"], r["data"]) for r in mine] == [
        ("anonymous", {"reason": "bad webhook signature"}),
        ("anonymous", {"reason": "missing or invalid node token"}),
    ]
    assert forged not in json.dumps(rows)


async def test_payment_state_changes_are_audited_with_their_cause_and_no_address(
    stack: PaymentStack, admin: NamedApp
) -> None:
    payment = await stack.created(amount_sat=5_000)
    rows = await audit(stack.client, admin, kind="payment_status_changed")
    mine = [r for r in rows if r["subject_id"] == payment["id"]]
    assert [(r["actor"], r["data"]["from"], r["data"]["to"], r["data"]["reason"]) for r in mine] == [
        ("satworks", "creating", "new", "address assigned")
    ]
    assert mine[0]["app"] is not None
    response = await stack.client.get("/v1/audit", headers=admin.auth)
    assert payment["address"] not in await response.text()


async def test_audit_filters_by_time_kind_and_app_and_pages_newest_first(
    client: TestClient[Any, Any], settings: Settings, admin: NamedApp
) -> None:
    apps = [new_app(settings) for _ in range(3)]
    assert await audit(client, admin, since=(datetime.now(UTC) + timedelta(hours=1)).isoformat()) == []
    assert [r["app"] for r in await audit(client, admin, app=apps[1].name)] == [apps[1].name]

    seen: list[str] = []
    query = {"kind": "key_created", "limit": "2"}
    while True:
        page = await (await client.get("/v1/audit", params=query, headers=admin.auth)).json()
        seen += [r["app"] for r in page["items"]]
        if page["next_cursor"] is None:
            break
        query["cursor"] = page["next_cursor"]
    mine = [name for name in seen if name in {a.name for a in apps}]
    assert mine == [a.name for a in reversed(apps)]


@pytest.mark.parametrize(
    "query", [{"kind": "coffee"}, {"since": "2026-01-01T00:00:00"}, {"since": "yesterday"}, {"cursor": "x"}]
)
async def test_bad_audit_queries_are_422(client: TestClient[Any, Any], admin: NamedApp, query: dict[str, str]) -> None:
    assert (await client.get("/v1/audit", params=query, headers=admin.auth)).status == 422


async def test_non_admin_keys_cannot_read_the_audit_trail(client: TestClient[Any, Any], settings: Settings) -> None:
    assert (await client.get("/v1/audit", headers=new_app(settings).auth)).status == 403


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_events SET actor = 'someone else'", "DELETE FROM audit_events", "TRUNCATE audit_events"]
)
def test_the_database_refuses_to_change_or_remove_audit_rows(settings: Settings, statement: str) -> None:
    new_app(settings)  # at least one row
    with psycopg.connect(db_dsn(settings)) as conn:
        before = conn.execute("SELECT count(*) FROM audit_events").fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement)
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone() == before
