"""Idempotency keys, app isolation and keyset pagination."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.integration.jobs_helpers import post_job
from tests.support import scalar


async def test_same_key_from_the_same_app_returns_the_same_job(client: Any, auth: Any, settings: Any) -> None:
    first = await post_job(client, auth, idempotency_key="order-42", delay_seconds=600)
    again = await client.post(
        "/v1/jobs", json={"type": "canary", "idempotency_key": "order-42", "delay_seconds": 600}, headers=auth
    )
    assert again.status == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["id"] == first["id"]
    assert (
        scalar(settings, "SELECT count(*) FROM jobs WHERE idempotency_key = 'order-42' AND id = %s", first["id"]) == 1
    )


async def test_idempotency_key_header_is_accepted(client: Any, auth: Any) -> None:
    headers = {**auth, "Idempotency-Key": "hdr-1"}
    first = await post_job(client, headers, delay_seconds=600)
    second = await post_job(client, headers, delay_seconds=600)
    assert first["id"] == second["id"]
    assert first["idempotency_key"] == "hdr-1"


async def test_same_key_with_a_different_body_conflicts(client: Any, auth: Any) -> None:
    first = await post_job(client, auth, idempotency_key="k", payload={"note": "a"}, delay_seconds=600)
    response = await client.post(
        "/v1/jobs",
        json={"type": "canary", "idempotency_key": "k", "payload": {"note": "b"}, "delay_seconds": 600},
        headers=auth,
    )
    assert response.status == 409
    body = await response.json()
    assert body["error"]["code"] == "conflict"
    assert body["error"]["details"] == {"errors": [], "job_id": first["id"]}


async def test_concurrent_requests_with_one_key_create_one_job(client: Any, auth: Any, settings: Any) -> None:
    body = {"type": "canary", "idempotency_key": "burst", "delay_seconds": 600}
    responses = await asyncio.gather(*(client.post("/v1/jobs", json=body, headers=auth) for _ in range(25)))
    ids = {(await r.json())["id"] for r in responses}
    assert [r.status for r in responses] == [202] * 25
    assert len(ids) == 1
    assert scalar(settings, "SELECT count(*) FROM jobs WHERE id = %s", ids.pop()) == 1


async def test_same_key_in_two_apps_makes_two_jobs(client: Any, auth: Any, make_key: Any) -> None:
    other = {"Authorization": f"Bearer {make_key()}"}
    mine = await post_job(client, auth, idempotency_key="shared", delay_seconds=600)
    theirs = await post_job(client, other, idempotency_key="shared", delay_seconds=600)
    assert mine["id"] != theirs["id"]


async def test_an_app_cannot_see_or_cancel_another_apps_job(client: Any, auth: Any, make_key: Any) -> None:
    job = await post_job(client, auth, delay_seconds=600)
    other = {"Authorization": f"Bearer {make_key()}"}
    assert (await client.get(f"/v1/jobs/{job['id']}", headers=other)).status == 404
    assert (await client.post(f"/v1/jobs/{job['id']}/cancel", headers=other)).status == 404
    listing = await (await client.get("/v1/jobs", headers=other)).json()
    assert listing["items"] == []
    assert (await client.get(f"/v1/jobs/{job['id']}", headers=auth)).status == 200


async def test_listing_pages_newest_first_with_a_cursor(client: Any, auth: Any) -> None:
    created = [(await post_job(client, auth, delay_seconds=600, payload={"note": str(i)}))["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/v1/jobs", params=params, headers=auth)).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(created))


async def test_listing_filters_by_status_and_type(client: Any, auth: Any) -> None:
    waiting = await post_job(client, auth, delay_seconds=600)
    cancelled = await post_job(client, auth, delay_seconds=600)
    await client.post(f"/v1/jobs/{cancelled['id']}/cancel", headers=auth)
    page = await (await client.get("/v1/jobs", params={"status": "cancelled", "type": "canary"}, headers=auth)).json()
    assert [item["id"] for item in page["items"]] == [cancelled["id"]]
    page = await (await client.get("/v1/jobs", params={"status": "scheduled"}, headers=auth)).json()
    assert [item["id"] for item in page["items"]] == [waiting["id"]]
    bad = await client.get("/v1/jobs", params={"status": "bogus"}, headers=auth)
    assert bad.status == 422
    bad_cursor = await client.get("/v1/jobs", params={"cursor": "!!"}, headers=auth)
    assert bad_cursor.status == 422


async def test_a_status_filter_pages_through_only_this_apps_jobs_in_that_status(
    client: Any, auth: Any, make_key: Any
) -> None:
    other = {"Authorization": f"Bearer {make_key()}"}
    await post_job(client, other, delay_seconds=600)  # another app's scheduled job, in between
    mine = [(await post_job(client, auth, delay_seconds=600))["id"] for _ in range(5)]
    cancelled = await post_job(client, auth, delay_seconds=600)
    await client.post(f"/v1/jobs/{cancelled['id']}/cancel", headers=auth)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"status": "scheduled", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/v1/jobs", params=params, headers=auth)).json()
        seen += [item["id"] for item in page["items"]]
        assert {item["status"] for item in page["items"]} <= {"scheduled"}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(mine))


# The Idempotency-Key rule is one rule: the same checks and answers on every endpoint that creates.
CREATES = [
    pytest.param("/v1/jobs", {"type": "canary", "delay_seconds": 600}, {"payload": {"note": "b"}}, "job", id="jobs"),
    pytest.param(
        "/v1/payments", {"method": "onchain", "amount_sat": 1_000}, {"amount_sat": 2_000}, "payment", id="payments"
    ),
]


@pytest.mark.parametrize(("path", "body", "change", "kind"), CREATES)
async def test_idempotency_key_means_the_same_on_every_endpoint(
    client: Any, auth: Any, path: str, body: dict[str, Any], change: dict[str, Any], kind: str
) -> None:
    key = f"key-{kind}-{uuid.uuid4().hex[:8]}"
    first = await client.post(path, json=body, headers={**auth, "Idempotency-Key": key})
    assert first.status == 202
    created = await first.json()
    assert created["idempotency_key"] == key
    assert "Idempotent-Replayed" not in first.headers

    # The same key in the body, same request: a replay of the first, 2xx.
    again = await client.post(path, json={**body, "idempotency_key": key}, headers=auth)
    assert (again.status, again.headers.get("Idempotent-Replayed")) == (202, "true")
    assert (await again.json())["id"] == created["id"]
    assert again.headers["Location"] == first.headers["Location"]

    # The same key, another request: 409 naming what the key made.
    conflict = await client.post(path, json={**body, **change}, headers={**auth, "Idempotency-Key": key})
    assert conflict.status == 409
    assert (await conflict.json())["error"]["details"] == {"errors": [], f"{kind}_id": created["id"]}

    # Header and body must agree; a key is 1 to 255 characters without U+0000.
    differ = await client.post(
        path, json={**body, "idempotency_key": "other"}, headers={**auth, "Idempotency-Key": key}
    )
    too_long = await client.post(path, json=body, headers={**auth, "Idempotency-Key": "k" * 256})
    empty = await client.post(path, json=body, headers={**auth, "Idempotency-Key": ""})
    nul = await client.post(path, json={**body, "idempotency_key": "a\u0000b"}, headers=auth)
    for refused in (differ, too_long, empty, nul):
        assert refused.status == 422, await refused.text()
        assert (await refused.json())["error"]["code"] == "validation_failed"
