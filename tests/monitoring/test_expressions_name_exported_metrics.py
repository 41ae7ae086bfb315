"""Every metric the dashboard and the alert rules read is one the processes really export.

Compared with real scrapes rather than with the registries the code builds (``HttpMetrics.create``,
``JobMetrics.create``): a registry lists what a process *could* export, while a scrape shows what it
does, under which job, with which sample suffixes. ``JobMetrics.enqueued`` for instance is in the workers'
registry but only the intake exports it, so ``satworks_jobs_enqueued_total{job="satworks-workers"}``
would pass a registry check and never show a point. The stack has run a job of every outcome and a
payment first (worker counters appear on first use), so a name missing here is missing in production.
Sample names are compared exactly (``_total``, ``_bucket``, ``_count``), and per scrape job when a
selector names its ``job``; ``up`` is Prometheus's own. A job the stack does not scrape exports nothing:
a selector naming it is reported.

One set comes from the code's registries instead (tests/monitoring/declared.py): ``satworks lnd-listener``
(the stack has no lnd; test_lightning_listener_metrics.py checks them against a real listener).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from satworks.metrics.build import register_build_info
from satworks.metrics.lightning import ListenerMetrics
from tests.monitoring.declared import declared_samples
from tests.monitoring.promql import dashboard_exprs, metric_refs, rule_exprs, unexported
from tests.monitoring.stack import MonitoredStack
from tests.support import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "satworks-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def sample_names(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def listener_samples() -> set[str]:
    """What ``satworks lnd-listener`` registers (satworks/listener/lnd.py): its metrics and build info."""
    registry = CollectorRegistry()
    ListenerMetrics.create(registry)
    register_build_info(registry)
    return declared_samples(registry)


@pytest.fixture(scope="module")
def exported(stack: MonitoredStack) -> dict[str, set[str]]:
    """Sample names by scrape job, as deploy/prometheus/prometheus.yml names the jobs."""
    return {
        "satworks-web": sample_names(stack.scrape_web()) | {"up"},
        "satworks-workers": sample_names(stack.scrape_worker()) | {"up"},
        "satworks-scheduler": sample_names(stack.scrape_scheduler()) | {"up"},
        "satworks-lnd-listener": listener_samples() | {"up"},
    }


def problems(exprs: list[tuple[str, str]], exported: dict[str, set[str]]) -> list[str]:
    return [f"{where}: {problem}" for where, expr in exprs for problem in unexported(metric_refs(expr), exported)]


def test_every_dashboard_panel_reads_exported_metrics(exported: dict[str, set[str]]) -> None:
    exprs = list(dashboard_exprs(DASHBOARD))
    assert len(exprs) >= 10
    assert problems(exprs, exported) == []


def test_every_alert_reads_exported_metrics(exported: dict[str, set[str]]) -> None:
    exprs = list(rule_exprs(ALERTS))
    assert len(exprs) >= 10
    assert problems(exprs, exported) == []


def test_a_panel_for_a_metric_nobody_exports_is_reported(exported: dict[str, set[str]], tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    dashboard["panels"].append(
        {
            "title": "Draws per second",
            "targets": [{"expr": 'sum(rate(satworks_draws_total{job="satworks-workers"}[$__rate_interval]))'}],
        }
    )
    copy = tmp_path / "dashboard.json"
    copy.write_text(json.dumps(dashboard))
    assert problems(list(dashboard_exprs(copy)), exported) == [
        "Draws per second: satworks_draws_total is not exported by job satworks-workers:"
        ' sum(rate(satworks_draws_total{job="satworks-workers"}[$__rate_interval]))'
    ]


def test_the_rows_of_every_process_are_checked(exported: dict[str, set[str]]) -> None:
    """The dashboard and the rules read each scrape job's own metrics, each name exported by that job."""
    refs = [ref for _, expr in [*dashboard_exprs(DASHBOARD), *rule_exprs(ALERTS)] for ref in metric_refs(expr)]
    read = {job: {ref.name for ref in refs if job in ref.jobs} - {"up"} for job in exported}
    assert {
        "satworks_draws_finished_total",
        "satworks_draw_duration_seconds_bucket",
        "satworks_webhook_deliveries_total",
        "satworks_emails_total",
        "satworks_lightning_checks_total",
    } <= read["satworks-workers"]
    assert {"satworks_lnd_stream_up", "satworks_lnd_stream_lag_seconds_bucket"} <= read["satworks-lnd-listener"]
    assert "satworks_scheduler_is_leader" in read["satworks-scheduler"]
    assert all(read.values()), read


def test_a_wrong_name_for_a_new_process_is_reported(exported: dict[str, set[str]]) -> None:
    exprs = [
        ("Stream up", 'satworks_lnd_stream_is_up{job="satworks-lnd-listener"}'),  # the name is satworks_lnd_stream_up
        ("Draws", 'rate(satworks_draws_finished{job="satworks-workers"}[5m])'),  # a counter is read as _total
        ("Lag", 'satworks_lnd_stream_lag_seconds_bucket{job="satworks-workers"}'),  # the listener's, not the workers'
    ]
    assert [problem.split(":")[1].split(";")[0].strip() for problem in problems(exprs, exported)] == [
        "satworks_lnd_stream_is_up is not exported by job satworks-lnd-listener",
        "satworks_draws_finished is not exported by job satworks-workers",
        "satworks_lnd_stream_lag_seconds_bucket is not exported by job satworks-workers",
    ]
