"""The PromQL name extraction the dashboard and rule checks rely on (tests/monitoring/promql.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tests.monitoring.declared import declared_samples
from tests.monitoring.promql import family, metric_refs, unexported


def names(expr: str) -> list[tuple[str, list[str]]]:
    return [(ref.name, sorted(ref.jobs)) for ref in metric_refs(expr)]


def test_selectors_give_the_metric_and_the_jobs_they_ask_for() -> None:
    expr = 'sum by (queue) (rate(satworks_jobs_started_total{job=~"satworks-workers|other", queue!="bulk"}[5m]))'
    assert names(expr) == [("satworks_jobs_started_total", ["other", "satworks-workers"])]
    assert names('up{job="satworks-web"} == 0') == [("up", ["satworks-web"])]
    assert names('{__name__="satworks_queue_messages", job="satworks-web"}') == [
        ("satworks_queue_messages", ["satworks-web"])
    ]


def test_functions_keywords_label_lists_strings_and_durations_are_not_metrics() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (route, le) (rate(satworks_http_request_duration_seconds_bucket"
        '{route=~"/v1/jobs/{id}", method="GET"}[$__rate_interval] offset 5m)))'
        " > bool 1e3 and on (route) group_left (instance) count without (pool) (up) unless vector(1)"
    )
    assert names(expr) == [("satworks_http_request_duration_seconds_bucket", []), ("up", [])]


def test_bare_names_and_several_selectors_are_all_found() -> None:
    expr = "satworks_a / ignoring (state) satworks_b{state='x'} or satworks_c[5m:1m]"
    assert names(expr) == [("satworks_a", []), ("satworks_b", []), ("satworks_c", [])]


def test_family_strips_one_sample_suffix() -> None:
    assert family("satworks_http_request_duration_seconds_bucket") == "satworks_http_request_duration_seconds"
    assert family("satworks_http_request_duration_seconds_count") == "satworks_http_request_duration_seconds"
    assert family("satworks_jobs_started_total") == "satworks_jobs_started"
    assert family("satworks_jobs_started_created") == "satworks_jobs_started"
    assert family("satworks_queue_messages") == "satworks_queue_messages"


def test_unexported_reports_unknown_names_wrong_suffixes_and_wrong_jobs() -> None:
    exported = {
        "satworks-web": {"up", "satworks_jobs_enqueued_total", "satworks_jobs_enqueued_created"},
        "satworks-workers": {"up", "satworks_jobs_started_total"},
    }
    assert unexported(metric_refs('rate(satworks_jobs_enqueued_total{job="satworks-web"}[5m])'), exported) == []
    assert unexported(metric_refs("up"), exported) == []
    problems = unexported(
        metric_refs(
            'rate(satworks_jobs_enqueued_total{job="satworks-workers"}[5m])'  # exported, by the other job
            " + satworks_jobs_started_bucket"  # a counter has no buckets
            ' + satworks_jobs_exploded_total{job="satworks-workers"}'  # does not exist
        ),
        exported,
    )
    assert [p.split(":")[0] for p in problems] == [
        "satworks_jobs_enqueued_total is not exported by job satworks-workers; that family exports"
        " ['satworks_jobs_enqueued_created', 'satworks_jobs_enqueued_total']",
        "satworks_jobs_started_bucket is not exported by any job; that family exports ['satworks_jobs_started_total']",
        "satworks_jobs_exploded_total is not exported by job satworks-workers",
    ]


def test_a_selector_for_a_job_nobody_scrapes_is_reported() -> None:
    exported = {"satworks-workers": {"up", "satworks_lnd_stream_up"}}
    assert unexported(metric_refs('satworks_lnd_stream_up{job="satworks-lnd-listener"}'), exported) == [
        "satworks_lnd_stream_up is not exported by job satworks-lnd-listener; that family exports"
        " ['satworks_lnd_stream_up']: satworks_lnd_stream_up{job=\"satworks-lnd-listener\"}"
    ]


def test_declared_samples_name_every_family_with_its_type_suffixes_used_or_not() -> None:
    registry = CollectorRegistry()
    Counter("satworks_x", "a labelled counter never used", ("reason",), registry=registry)
    Histogram("satworks_x_seconds", "a histogram", registry=registry)
    Gauge("satworks_x_up", "a gauge", registry=registry)
    assert declared_samples(registry) == {
        "satworks_x_total",
        "satworks_x_created",
        "satworks_x_seconds_bucket",
        "satworks_x_seconds_count",
        "satworks_x_seconds_sum",
        "satworks_x_seconds_created",
        "satworks_x_up",
    }
