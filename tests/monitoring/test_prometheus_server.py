"""A real Prometheus server scrapes the intake and a worker pool, evaluates alerts.yml, and answers
queries for the key series with the values the stack's jobs must have produced.

One server per test process (module scope). Only the last test step adds a job to the shared stack,
after every count has been checked.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.monitoring.prometheus_server import ALERTS, PrometheusServer
from tests.monitoring.promql import rule_exprs
from tests.monitoring.stack import DEAD, ENQUEUED, FAILED, JOBS, RETRIED, STARTED, SUCCEEDED, MonitoredStack

WEB, WORKERS = "satworks-web", "satworks-workers"


@pytest.fixture(scope="module")
def prometheus(prometheus_bin: str, stack: MonitoredStack) -> Iterator[PrometheusServer]:
    server = PrometheusServer(
        prometheus_bin,
        {WEB: [stack.web_url.removeprefix("http://")], WORKERS: [stack.worker_url.removeprefix("http://")]},
    ).start()
    try:
        yield server
    finally:
        server.stop()
    assert not server.dir.exists()


def by_queue(server: PrometheusServer, promql: str) -> dict[str, float]:
    return {dict(labels)["queue"]: value for labels, value in server.query(promql).items()}


def scalar(server: PrometheusServer, promql: str) -> float | None:
    result = server.query(promql)
    assert len(result) <= 1, result
    return next(iter(result.values()), None)


def test_prometheus_sees_the_counts_of_the_jobs_that_ran_then_alerts_on_a_new_dead_letter(
    prometheus: PrometheusServer, stack: MonitoredStack
) -> None:
    def both_up() -> bool:
        up = {dict(labels)["job"]: value for labels, value in prometheus.query("up").items()}
        return up == {WEB: 1.0, WORKERS: 1.0}

    prometheus.wait(both_up, what="both targets scraped and up")

    # Queue depth (from the intake, read from the broker at scrape time)
    delayed = f'satworks_queue_messages{{job="{WEB}", queue="default", state="delayed"}}'
    assert scalar(prometheus, delayed) == 1  # the scheduled job
    dead_letters = f'satworks_queue_messages{{job="{WEB}", state="dead_letter"}}'
    assert by_queue(prometheus, dead_letters) == {"critical": 1, "default": 0, "bulk": 1}  # dead and failed
    # Dead and failed jobs apart (from Postgres): the dead-letter alerts read only the dead ones
    assert by_queue(prometheus, f'satworks_dead_letter_jobs{{job="{WEB}"}}') == {"critical": 1, "default": 0, "bulk": 0}
    assert by_queue(prometheus, f'satworks_failed_jobs{{job="{WEB}"}}') == {"critical": 0, "default": 0, "bulk": 1}

    # Jobs by outcome: the intake counts what it enqueued, the workers what ran and how it ended
    assert by_queue(prometheus, f'satworks_jobs_enqueued_total{{job="{WEB}", type="canary"}}') == ENQUEUED
    workers = f'{{job="{WORKERS}", type="canary"}}'
    assert by_queue(prometheus, f"sum by (queue) (satworks_jobs_started_total{workers})") == STARTED
    assert by_queue(prometheus, f"sum by (queue) (satworks_jobs_succeeded_total{workers})") == SUCCEEDED
    assert by_queue(prometheus, f"sum by (queue) (satworks_jobs_retried_total{workers})") == RETRIED
    assert by_queue(prometheus, f"sum by (queue) (satworks_jobs_failed_total{workers})") == FAILED
    assert by_queue(prometheus, f"sum by (queue) (satworks_jobs_dead_total{workers})") == DEAD
    assert scalar(prometheus, f"sum(satworks_job_duration_seconds_count{workers})") == sum(STARTED.values())

    # Intake latency: one observation per POST /v1/jobs, and a finite median
    posts = f'{{job="{WEB}", route="/v1/jobs", method="POST"}}'
    assert scalar(prometheus, f"satworks_http_request_duration_seconds_count{posts}") == len(JOBS)
    median = scalar(prometheus, f"histogram_quantile(0.5, satworks_http_request_duration_seconds_bucket{posts})")
    assert median is not None and 0 < median <= 5

    # Payments by status: the one request got its address from the node
    payments = {
        dict(labels)["status"]: value
        for labels, value in prometheus.query(f'satworks_payment_requests{{job="{WEB}", method="onchain"}}').items()
    }
    assert payments["new"] == 1 and payments["creating"] == 0, payments

    # Build info from both processes
    assert scalar(prometheus, "count(satworks_build_info)") == 2

    # Alerts on live data: a dead job on bulk fires SatworksDeadLetterGrowing at once (no `for:`); the
    # failed one already there did not
    def bulk_dead_letters() -> float | None:
        return scalar(prometheus, f'satworks_dead_letter_jobs{{job="{WEB}", queue="bulk"}}')

    assert bulk_dead_letters() == 0
    assert not prometheus.query('ALERTS{alertname="SatworksDeadLetterGrowing"}')
    dies = {"type": "canary", "priority": "low", "payload": {"fail": "transient"}, "max_retries": 0}
    response = stack.http.post("/v1/jobs", json=dies, headers=stack.auth)
    assert response.status_code == 202, response.text

    def firing() -> dict[str, str] | None:
        alerts = prometheus.api("alerts")["alerts"]
        named = [a for a in alerts if a["labels"]["alertname"] == "SatworksDeadLetterGrowing"]
        return named[0]["labels"] if named and named[0]["state"] == "firing" else None

    labels = prometheus.wait(firing, what="SatworksDeadLetterGrowing to fire")
    assert labels == {"alertname": "SatworksDeadLetterGrowing", "queue": "bulk", "severity": "warning"}
    assert bulk_dead_letters() == 1


def test_prometheus_evaluates_every_alert_rule_without_errors(prometheus: PrometheusServer) -> None:
    def rules_evaluated() -> list[dict[str, str]] | None:
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        done = all(not rule["lastEvaluation"].startswith("0001") for rule in rules)
        return rules if rules and done else None

    rules = prometheus.wait(rules_evaluated, what="every rule evaluated once")
    assert {rule["name"]: rule["health"] for rule in rules} == {rule["name"]: "ok" for rule in rules}
    assert len(rules) == len(list(rule_exprs(ALERTS)))
    assert httpx.get(f"{prometheus.url}/-/healthy", timeout=5).status_code == 200
