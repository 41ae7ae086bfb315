"""Every process's /metrics passes ``promtool check metrics`` and carries ``satworks_build_info``."""

from __future__ import annotations

import platform
import subprocess

import dramatiq
from prometheus_client.parser import text_string_to_metric_families

import satworks
from tests.monitoring.stack import MonitoredStack


def promtool_check(promtool: str, text: str) -> str:
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    return (result.stdout + result.stderr).strip() or f"exit {result.returncode}"


def build_info(text: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "satworks_build_info" and sample.value == 1
    ]


def test_intake_metrics_pass_promtool_check_metrics(promtool: str, stack: MonitoredStack) -> None:
    text = stack.scrape_web()
    assert "satworks_http_request_duration_seconds_bucket" in text  # a real scrape, with requests in it
    assert promtool_check(promtool, text) == "exit 0"


def test_worker_pool_metrics_pass_promtool_check_metrics(promtool: str, stack: MonitoredStack) -> None:
    text = stack.scrape_worker()
    assert "satworks_job_duration_seconds_bucket" in text  # jobs ran in this pool
    assert promtool_check(promtool, text) == "exit 0"


def test_every_process_reports_its_build_once(stack: MonitoredStack) -> None:
    expected = {"version": satworks.__version__, "python": platform.python_version(), "dramatiq": dramatiq.__version__}
    assert build_info(stack.scrape_web()) == [expected]
    assert build_info(stack.scrape_worker()) == [expected]
