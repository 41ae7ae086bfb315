"""Small HTTP helpers for the job API tests."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.support import eventually


async def post_job(client: TestClient[Any, Any], headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("type", "canary")
    response = await client.post("/v1/jobs", json=body, headers=headers)
    assert response.status == 202, await response.text()
    document: dict[str, Any] = await response.json()
    return document


async def get_job(client: TestClient[Any, Any], headers: dict[str, str], job_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/jobs/{job_id}", headers=headers)
    assert response.status == 200, await response.text()
    document: dict[str, Any] = await response.json()
    return document


async def wait_for_status(
    client: TestClient[Any, Any], headers: dict[str, str], job_id: str, *statuses: str, timeout_s: float = 20
) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    async def check() -> dict[str, Any] | None:
        job = await get_job(client, headers, job_id)
        seen[:] = [job]
        return job if job["status"] in statuses else None

    try:
        return await eventually(check, timeout_s=timeout_s, what=f"job {job_id} to be {statuses}")
    except AssertionError as exc:  # say what the job was instead, not just "last: None"
        raise AssertionError(f"{exc}; the job was: {seen[-1] if seen else 'never read'}") from None
