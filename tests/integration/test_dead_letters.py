"""Dead letters through HTTP: list, requeue one (it runs again and succeeds), bulk requeue with a dry
run, admin scope, and filters that keep apps apart."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from satworks.http.app import create_app
from satworks.settings import Settings
from tests.integration.jobs_helpers import get_job, post_job, wait_for_status
from tests.integration.ops_helpers import NamedApp, new_app
from tests.support import WorkerProcess

pytestmark = pytest.mark.usefixtures("worker")

# Fails its first attempt and has no retries: dead after one run, succeeds on a second.
DIES_ONCE = {"payload": {"fail": "transient", "fail_attempts": 1}, "max_retries": 0}
FAILS_FOR_GOOD = {"payload": {"fail": "permanent"}, "priority": "low"}


@pytest.fixture
def admin(settings: Settings) -> NamedApp:
    return new_app(settings, admin=True, prefix="ops")


@pytest.fixture
def app(settings: Settings) -> NamedApp:
    return new_app(settings)


async def dead_letters(client: TestClient[Any, Any], admin: NamedApp, **query: str) -> dict[str, Any]:
    response = await client.get("/v1/dead-letters", params=query, headers=admin.auth)
    assert response.status == 200, await response.text()
    document: dict[str, Any] = await response.json()
    return document


async def bulk(client: TestClient[Any, Any], admin: NamedApp, **body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/v1/dead-letters/requeue", json=body, headers=admin.auth)
    return response.status, await response.json()


async def test_a_requeued_dead_job_runs_again_with_its_attempts_kept_and_succeeds(
    client: TestClient[Any, Any], app: NamedApp, admin: NamedApp, worker: WorkerProcess
) -> None:
    job = await post_job(client, app.auth, **DIES_ONCE)
    await wait_for_status(client, app.auth, job["id"], "dead")

    listed = (await dead_letters(client, admin, app=app.name))["items"]
    assert [(d["id"], d["app"], d["status"], d["attempts"], d["queue"]) for d in listed] == [
        (job["id"], app.name, "dead", 1, "default")
    ]
    assert listed[0]["error"]["type"] == "ChaosRetry"
    assert listed[0]["finished_at"] is not None

    response = await client.post(f"/v1/dead-letters/{job['id']}/requeue", headers=admin.auth)
    assert response.status == 202, await response.text()
    requeued = await response.json()
    assert (requeued["id"], requeued["status"], requeued["attempts"]) == (job["id"], "queued", 1)

    done = await wait_for_status(client, app.auth, job["id"], "succeeded")
    assert (done["attempts"], done["result"]["attempt"], done["error"]) == (2, 2, None)
    assert (await dead_letters(client, admin, app=app.name))["items"] == []

    again = await client.post(f"/v1/dead-letters/{job['id']}/requeue", headers=admin.auth)
    assert again.status == 409
    assert (await again.json())["error"]["details"] == {"errors": [], "status": "succeeded"}

    audit = await client.get("/v1/audit", params={"kind": "job_requeued", "app": app.name}, headers=admin.auth)
    rows = (await audit.json())["items"]
    assert [(r["subject_id"], r["actor"], r["data"]["from_status"], r["data"]["bulk"]) for r in rows] == [
        (job["id"], admin.name, "dead", False)
    ]


async def test_bulk_requeue_counts_in_a_dry_run_and_moves_only_what_matches(
    client: TestClient[Any, Any], app: NamedApp, admin: NamedApp
) -> None:
    dying = [await post_job(client, app.auth, **DIES_ONCE) for _ in range(2)]
    failing = await post_job(client, app.auth, **FAILS_FOR_GOOD)
    for job in dying:
        await wait_for_status(client, app.auth, job["id"], "dead")
    await wait_for_status(client, app.auth, failing["id"], "failed")

    counted = {"dry_run": True, "matched": 3, "requeued": 0, "job_ids": []}
    assert (await bulk(client, admin, app=app.name)) == (200, counted)
    assert (await bulk(client, admin, app=app.name, status="failed"))[1]["matched"] == 1
    assert (await bulk(client, admin, app=app.name, queue="bulk"))[1]["matched"] == 1
    assert (await bulk(client, admin, app=app.name, type="no.such.type"))[1]["matched"] == 0
    for job in dying:  # a dry run changed nothing
        assert (await get_job(client, app.auth, job["id"]))["status"] == "dead"

    status, moved = await bulk(client, admin, app=app.name, status="dead", dry_run=False)
    assert (status, moved["matched"], moved["requeued"]) == (200, 2, 2)
    assert sorted(moved["job_ids"]) == sorted(job["id"] for job in dying)
    for job in dying:
        await wait_for_status(client, app.auth, job["id"], "succeeded")
    assert (await get_job(client, app.auth, failing["id"]))["status"] == "failed"
    assert [d["id"] for d in (await dead_letters(client, admin, app=app.name))["items"]] == [failing["id"]]

    audit = await client.get("/v1/audit", params={"kind": "job_requeued", "app": app.name}, headers=admin.auth)
    rows = (await audit.json())["items"]
    assert sorted(r["subject_id"] for r in rows) == sorted(job["id"] for job in dying)
    assert all(r["data"]["bulk"] is True and r["actor"] == admin.name for r in rows)


async def test_only_admin_keys_reach_dead_letters_and_filters_keep_apps_apart(
    client: TestClient[Any, Any], settings: Settings, app: NamedApp, admin: NamedApp
) -> None:
    other = new_app(settings)
    mine = await post_job(client, app.auth, **DIES_ONCE)
    theirs = await post_job(client, other.auth, **DIES_ONCE)
    for owner, job in ((app, mine), (other, theirs)):
        await wait_for_status(client, owner.auth, job["id"], "dead")

    for path, method in [
        ("/v1/dead-letters", "GET"),
        ("/v1/dead-letters/requeue", "POST"),
        (f"/v1/dead-letters/{mine['id']}/requeue", "POST"),
        ("/v1/audit", "GET"),
    ]:
        refused = await client.request(method, path, json={"app": app.name, "dry_run": False}, headers=other.auth)
        assert refused.status == 403, path
        anonymous = {"X-Forwarded-For": f"10.77.{uuid.uuid4().int % 250}.1"}  # its own failure budget
        assert (await client.request(method, path, headers=anonymous)).status == 401, path
    assert (await get_job(client, app.auth, mine["id"]))["status"] == "dead"  # nothing was requeued
    assert (await client.get(f"/v1/jobs/{mine['id']}", headers=other.auth)).status == 404

    assert [d["id"] for d in (await dead_letters(client, admin, app=app.name))["items"]] == [mine["id"]]
    status, moved = await bulk(client, admin, app=app.name, dry_run=False)
    assert (status, moved["job_ids"]) == (200, [mine["id"]])
    assert (await get_job(client, other.auth, theirs["id"]))["status"] == "dead"


async def test_requeue_of_a_job_that_is_no_dead_letter_is_refused(
    client: TestClient[Any, Any], app: NamedApp, admin: NamedApp
) -> None:
    waiting = await post_job(client, app.auth, delay_seconds=3600)
    refused = await client.post(f"/v1/dead-letters/{waiting['id']}/requeue", headers=admin.auth)
    assert (refused.status, (await refused.json())["error"]["details"]) == (409, {"errors": [], "status": "scheduled"})
    for missing in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        assert (await client.post(f"/v1/dead-letters/{missing}/requeue", headers=admin.auth)).status == 404


@pytest.mark.parametrize(
    "query", [{"queue": "nope"}, {"status": "succeeded"}, {"cursor": "bm9wZQ=="}, {"limit": "0"}, {"colour": "red"}]
)
async def test_bad_dead_letter_queries_are_422(
    client: TestClient[Any, Any], admin: NamedApp, query: dict[str, str]
) -> None:
    response = await client.get("/v1/dead-letters", params=query, headers=admin.auth)
    assert response.status == 422, await response.text()


@pytest.mark.parametrize("body", [{"status": "queued"}, {"limit": 5000}, {"dry_run": "maybe"}, {"everything": True}])
async def test_bad_bulk_requeues_are_422_and_move_nothing(
    client: TestClient[Any, Any], admin: NamedApp, body: dict[str, Any]
) -> None:
    status, document = await bulk(client, admin, **body)
    assert (status, document["error"]["code"]) == (422, "validation_failed")


async def test_a_requeue_the_broker_refuses_is_503_and_leaves_the_job_dead_and_unaudited(
    client: TestClient[Any, Any], aiohttp_client: Any, settings: Settings, app: NamedApp, admin: NamedApp
) -> None:
    job = await post_job(client, app.auth, **DIES_ONCE)
    await wait_for_status(client, app.auth, job["id"], "dead")
    down = await aiohttp_client(create_app(settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})))

    one = await down.post(f"/v1/dead-letters/{job['id']}/requeue", headers=admin.auth)
    many = await down.post("/v1/dead-letters/requeue", json={"app": app.name, "dry_run": False}, headers=admin.auth)
    assert (one.status, many.status) == (503, 503)
    assert (await get_job(client, app.auth, job["id"]))["status"] == "dead"
    audit = await client.get("/v1/audit", params={"kind": "job_requeued", "app": app.name}, headers=admin.auth)
    assert (await audit.json())["items"] == []

    response = await client.post(f"/v1/dead-letters/{job['id']}/requeue", headers=admin.auth)  # the broker is back
    assert response.status == 202
    await wait_for_status(client, app.auth, job["id"], "succeeded")
