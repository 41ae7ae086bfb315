"""Health, readiness, metrics, statistics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from satworks.http.routes import all_routes
from tests.integration.jobs_helpers import post_job, wait_for_status
from tests.support import eventually


async def test_health_and_ready_answer_ok(client: Any) -> None:
    assert (await (await client.get("/health")).json()) == {"status": "ok", "checks": {}}
    ready = await client.get("/ready")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"postgres": "ok", "redis": "ok", "broker": "ok"}


async def test_metrics_count_requests_and_enqueued_jobs(client: Any, auth: Any) -> None:
    await post_job(client, auth, delay_seconds=600)
    await client.get("/v1/jobs/00000000-0000-0000-0000-000000000000", headers=auth)
    text = await (await client.get("/metrics")).text()
    assert 'satworks_http_requests_total{method="POST",route="/v1/jobs",status="202"} 1.0' in text
    assert 'satworks_http_requests_total{method="GET",route="/v1/jobs/{id}",status="404"} 1.0' in text
    assert 'satworks_jobs_enqueued_total{queue="default",type="canary"} 1.0' in text
    assert 'satworks_queue_messages{queue="default",state="delayed"}' in text
    assert 'satworks_payment_requests{method="onchain",status="settled"}' in text
    assert "sw_" not in text  # no keys in labels


async def test_worker_metrics_count_job_outcomes(client: Any, auth: Any, settings: Any, worker: Any) -> None:
    import httpx

    job = await post_job(client, auth, priority="low", payload={"fail": "permanent"})
    await wait_for_status(client, auth, job["id"], "failed")
    url = f"http://{settings.http_host}:{settings.worker_metrics_port}/metrics"

    async def failed_counted() -> bool:
        async with httpx.AsyncClient() as http:
            try:
                text = (await http.get(url)).text
            except httpx.TransportError:
                return False
        return 'satworks_jobs_failed_total{queue="bulk",type="canary"}' in text

    await eventually(failed_counted, what="the worker to export the failure")


async def test_stats_show_queues_and_job_counts(client: Any, auth: Any, make_key: Any) -> None:
    await post_job(client, auth, delay_seconds=600, priority="high")
    admin = {"Authorization": f"Bearer {make_key(admin=True)}"}
    stats = await (await client.get("/v1/stats", headers=admin)).json()
    assert set(stats["queues"]) == {"critical", "default", "bulk"}
    assert stats["queues"]["critical"]["delayed"] >= 1
    assert stats["jobs_by_type"]["canary"]["scheduled"] >= 1


async def test_openapi_document_is_valid_and_describes_every_route(client: Any) -> None:
    document = await (await client.get("/v1/openapi.json")).json()
    validate(document)
    for route in all_routes():
        assert route.method.lower() in document["paths"][route.path], route.path
    create = document["paths"]["/v1/jobs"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/JobIn")
    assert {"202", "401", "409", "413", "415", "422", "429"} <= set(create["responses"])
    job_in = document["components"]["schemas"]["JobIn"]
    assert set(job_in["properties"]) == {
        "type",
        "payload",
        "priority",
        "run_at",
        "delay_seconds",
        "idempotency_key",
        "max_retries",
    }
