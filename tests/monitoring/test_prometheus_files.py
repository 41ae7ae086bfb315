"""deploy/prometheus through promtool: the config and the rules are valid, and every alert has unit
tests (deploy/prometheus/alerts_test.yml) in which it fires and in which it stays quiet."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import yaml

from tests.support import ROOT

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
OPERATIONS = ROOT / "docs" / "operations.md"


def run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_prometheus_config_is_valid_and_finds_the_rules(promtool: str) -> None:
    output = run(promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert "SUCCESS: 1 rule files found" in output, output


def test_alert_rules_are_valid(promtool: str) -> None:
    output = run(promtool, "check", "rules", "--lint=all", "--lint-fatal", str(PROMETHEUS_DIR / "alerts.yml"))
    assert f"SUCCESS: {len(alert_rules())} rules found" in output, output


def test_alert_unit_tests_pass(promtool: str) -> None:
    output = run(promtool, "test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml"))
    assert "SUCCESS" in output, output


def test_every_alert_has_unit_tests_where_it_fires_and_where_it_does_not() -> None:
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert not names - fires, f"alerts never expected to fire in alerts_test.yml: {sorted(names - fires)}"
    assert not names - quiet, f"alerts never expected to stay quiet in alerts_test.yml: {sorted(names - quiet)}"


def test_every_alert_links_its_own_runbook_section() -> None:
    anchors = {_github_anchor(line) for line in OPERATIONS.read_text().splitlines() if line.startswith("#")}
    for rule in alert_rules():
        runbook = rule["annotations"].get("runbook", "")
        assert runbook == f"docs/operations.md#{rule['alert'].lower()}", rule["alert"]
        assert runbook.split("#", 1)[1] in anchors, f"no section {rule['alert']} in docs/operations.md"
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]


def _github_anchor(heading: str) -> str:
    """The anchor GitHub makes for a Markdown heading."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^a-z0-9 _-]", "", text).replace(" ", "-")
