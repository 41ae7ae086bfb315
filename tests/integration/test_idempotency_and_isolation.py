"""Idempotency keys, app isolation and keyset pagination."""

from __future__ import annotations

import asyncio
from typing import Any

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
    assert body["error"]["details"] == {"job_id": first["id"]}


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
