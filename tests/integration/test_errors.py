"""Every error answers in one shape, with the right status, and leaves nothing behind."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest

from satworks.http.app import create_app
from tests.support import scalar


def assert_error(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert "Traceback" not in str(body)


def jobs_of(settings: Any, key: str) -> int:
    key_id = key.split("_")[1]
    return int(
        scalar(settings, "SELECT count(*) FROM jobs j JOIN apps a ON a.id = j.app_id WHERE a.key_id = %s", key_id)
    )


async def test_malformed_json_is_400(client: Any, auth: Any) -> None:
    response = await client.post("/v1/jobs", data=b"{not json", headers={**auth, "Content-Type": "application/json"})
    assert response.status == 400
    assert_error(await response.json(), "bad_request")


async def test_non_json_body_is_415(client: Any, auth: Any) -> None:
    response = await client.post("/v1/jobs", data=b"type=canary", headers={**auth, "Content-Type": "text/plain"})
    assert response.status == 415
    assert_error(await response.json(), "unsupported_media_type")


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (None, "missing API key: send the key as 'Authorization: Bearer <key>'"),
        ("Bearer nope", "malformed API key"),
        ("Bearer sw_{key_id}_wrong", "invalid API key"),
        ("Basic abc", "the Authorization scheme must be Bearer: send the key as 'Authorization: Bearer <key>'"),
        ("Token sw_{key_id}_x", "the Authorization scheme must be Bearer"),
    ],
)
async def test_missing_or_invalid_key_is_401_saying_what_is_expected(
    client: Any, header: str | None, says: str
) -> None:
    headers = {"X-Forwarded-For": f"10.1.{uuid.uuid4().int % 250}.9"}
    if header:
        headers["Authorization"] = header.format(key_id=uuid.uuid4().hex[:12])
    response = await client.get(f"/v1/jobs/{uuid.uuid4()}", headers=headers)
    assert response.status == 401
    body = await response.json()
    assert_error(body, "unauthorized")
    assert body["error"]["message"].startswith(says)


async def test_revoked_key_is_401(aiohttp_client: Any, settings: Any) -> None:
    from satworks.db import apps
    from satworks.db.engine import sync_engine

    client = await aiohttp_client(create_app(settings.model_copy(update={"auth_cache_ttl_s": 0})))
    engine = sync_engine(settings.database_url, pool_size=1)
    name = f"revoked-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        key = apps.create(conn, name, admin=False, rate_limit_per_minute=None)
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/v1/jobs", headers=headers)).status == 200
    with engine.begin() as conn:
        apps.revoke(conn, name)
    engine.dispose()
    assert (await client.get("/v1/jobs", headers=headers)).status == 401


async def test_key_without_admin_scope_is_403_on_stats(client: Any, auth: Any) -> None:
    response = await client.get("/v1/stats", headers=auth)
    assert response.status == 403
    assert_error(await response.json(), "forbidden")


async def test_unknown_job_and_unknown_route_are_404(client: Any, auth: Any) -> None:
    for path in (f"/v1/jobs/{uuid.uuid4()}", "/v1/jobs/not-a-uuid", "/v1/nothing-here"):
        response = await client.get(path, headers=auth)
        assert response.status == 404, path
        assert_error(await response.json(), "not_found")


async def test_body_over_the_limit_is_413_and_records_nothing(client: Any, auth: Any, key: str, settings: Any) -> None:
    big = json.dumps({"type": "canary", "payload": {"note": "x" * (settings.max_body_bytes + 10)}}).encode()
    response = await client.post("/v1/jobs", data=io.BytesIO(big), headers={**auth, "Content-Type": "application/json"})
    assert response.status == 413
    assert_error(await response.json(), "payload_too_large")
    assert jobs_of(settings, key) == 0


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"type": "no-such-type"}, "unknown job type"),
        ({"type": "canary", "payload": {"sleep_ms": -1}}, "payload"),
        ({"type": "canary", "payload": {"surprise": 1}}, "payload"),
        ({"type": "canary", "priority": "urgent"}, "priority"),
        ({"type": "canary", "run_at": "2030-01-01T00:00:00"}, "run_at"),
        ({"type": "canary", "run_at": "2099-01-01T00:00:00Z"}, "7 days"),
        ({"type": "canary", "delay_seconds": 5, "run_at": "2030-01-01T00:00:00Z"}, "not both"),
        ({"type": "canary", "max_retries": 99}, "max_retries"),
        ({"payload": {}}, "type"),
        (["canary"], "job request"),
    ],
)
async def test_invalid_job_is_422_and_nothing_is_recorded(
    client: Any, auth: Any, key: str, settings: Any, body: Any, where: str
) -> None:
    response = await client.post("/v1/jobs", json=body, headers=auth)
    assert response.status == 422
    error = await response.json()
    assert_error(error, "validation_failed")
    assert where in str(error)
    assert jobs_of(settings, key) == 0


async def test_app_over_its_rate_limit_gets_429_with_retry_after(client: Any, make_key: Any) -> None:
    headers = {"Authorization": f"Bearer {make_key(rate_limit_per_minute=3)}"}
    statuses = [(await client.get("/v1/jobs", headers=headers)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = await client.get("/v1/jobs", headers=headers)
    assert_error(await response.json(), "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def fresh_address() -> dict[str, str]:
    return {"X-Forwarded-For": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.1"}


async def test_repeated_failed_authentication_from_one_address_gets_429_but_valid_keys_still_work(
    client: Any, key: str, make_key: Any
) -> None:
    address = fresh_address()
    statuses = []
    for _ in range(6):  # a different made-up key each time: only the address is over its limit
        bad = {**address, "Authorization": f"Bearer sw_{uuid.uuid4().hex[:12]}_guess"}
        statuses.append((await client.get("/v1/jobs", headers=bad)).status)
    assert statuses == [401] * 5 + [429]
    refused = await client.get("/v1/jobs", headers={**address, "Authorization": "Bearer sw_0123456789ab_x"})
    assert (refused.status, 1 <= int(refused.headers["Retry-After"]) <= 60) == (429, True)
    assert_error(await refused.json(), "rate_limited")
    # Other apps behind that address are not locked out: their valid keys still work, from there too.
    assert (await client.get("/v1/jobs", headers={**address, "Authorization": f"Bearer {key}"})).status == 200
    other = make_key()
    assert (await client.get("/v1/jobs", headers={**address, "Authorization": f"Bearer {other}"})).status == 200


async def test_repeated_failures_with_one_key_id_lock_that_key_from_every_address(client: Any, key: str) -> None:
    key_id = key.split("_")[1]
    statuses = []
    for _ in range(6):  # guesses at one key's secret, each from another address
        guess = {**fresh_address(), "Authorization": f"Bearer sw_{key_id}_guess{uuid.uuid4().hex[:6]}"}
        statuses.append((await client.get("/v1/jobs", headers=guess)).status)
    assert statuses == [401] * 5 + [429]
    # Until the window ends that key is refused even with its secret, from anywhere.
    locked = await client.get("/v1/jobs", headers={**fresh_address(), "Authorization": f"Bearer {key}"})
    assert locked.status == 429
    assert_error(await locked.json(), "rate_limited")


async def test_broker_down_is_503_and_leaves_no_job_behind(aiohttp_client: Any, settings: Any, make_key: Any) -> None:
    key = make_key(admin=True)
    down = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    client = await aiohttp_client(create_app(down))
    response = await client.post("/v1/jobs", json={"type": "canary"}, headers={"Authorization": f"Bearer {key}"})
    assert response.status == 503
    body = await response.json()
    assert_error(body, "dependency_unavailable")
    assert body["error"]["details"] == {"errors": [], "dependency": "broker"}
    assert jobs_of(settings, key) == 0
    ready = await client.get("/ready")
    assert ready.status == 503
    assert (await ready.json())["checks"] == {"postgres": "ok", "redis": "ok", "broker": "unavailable"}


async def test_database_down_is_503(aiohttp_client: Any, settings: Any) -> None:
    down = settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/nothing"})
    client = await aiohttp_client(create_app(down))
    response = await client.get("/v1/jobs", headers={"Authorization": "Bearer sw_000000000000_secret"})
    assert response.status == 503
    assert_error(await response.json(), "dependency_unavailable")
    ready = await client.get("/ready")
    assert ready.status == 503
    assert (await ready.json())["checks"]["postgres"] == "unavailable"
