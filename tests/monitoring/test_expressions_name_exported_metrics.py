"""Every metric the dashboard and the alert rules read is one the processes really export.

Compared with real scrapes rather than with the registries the code builds (``HttpMetrics.create``,
``JobMetrics.create``): a registry lists what a process *could* export, while a scrape shows what it
does, under which job, with which sample suffixes. ``JobMetrics.enqueued`` for instance is in the workers'
registry but only the intake exports it, so ``satworks_jobs_enqueued_total{job="satworks-workers"}``
would pass a registry check and never show a point. The stack has run a job of every outcome and a
payment first (worker counters appear on first use), so a name missing here is missing in production.
Sample names are compared exactly (``_total``, ``_bucket``, ``_count``), and per scrape job when a
selector names its ``job``; ``up`` is Prometheus's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.monitoring.promql import dashboard_exprs, metric_refs, rule_exprs, unexported
from tests.monitoring.stack import MonitoredStack
from tests.support import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "satworks-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def sample_names(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.fixture(scope="module")
def exported(stack: MonitoredStack) -> dict[str, set[str]]:
    """Sample names by scrape job, as deploy/prometheus/prometheus.yml names the jobs."""
    return {
        "satworks-web": sample_names(stack.scrape_web()) | {"up"},
        "satworks-workers": sample_names(stack.scrape_worker()) | {"up"},
        "satworks-scheduler": sample_names(stack.scrape_scheduler()) | {"up"},
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
