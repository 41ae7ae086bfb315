"""The metric names a PromQL expression reads, with the scrape job each selector asks for.

Small and PromQL-aware enough for our dashboard and rules: strings, range and subquery brackets and the
label lists of ``by``/``without``/``on``/``ignoring``/``group_left``/``group_right`` are removed, and an
identifier followed by ``(`` is a function or an aggregation. What is left outside braces is a metric
name; a ``job="..."`` (or ``job=~"a|b"``) matcher in its braces names the scrape jobs it must come from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}
KEYWORDS |= {"offset", "inf", "nan", "atan2"}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_BRACKETS = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
_IDENTIFIER = re.compile(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\(?)")
# Sample suffixes of counters and histograms, longest first: `_bucket` before nothing, `_total` once.
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


@dataclass(frozen=True)
class MetricRef:
    name: str
    jobs: frozenset[str]  # empty: any job
    expr: str


def family(name: str) -> str:
    """The family a sample name belongs to: ``x_seconds_bucket`` → ``x_seconds``, ``x_total`` → ``x``."""
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def metric_refs(expr: str) -> list[MetricRef]:
    """Every metric an expression reads, in order."""
    strings: list[str] = []

    def hide_string(match: re.Match[str]) -> str:
        strings.append(match.group(0)[1:-1])
        return f"__string{len(strings) - 1}__"

    selectors: list[tuple[str, str]] = []

    def hide_selector(match: re.Match[str]) -> str:
        selectors.append((match.group(1) or "", match.group(2)))
        return f" __selector{len(selectors) - 1}__ "

    text = _STRING.sub(hide_string, expr)  # first: a string may hold any of { } [ ] ( )
    text = _BRACKETS.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    text = _SELECTOR.sub(hide_selector, text)
    refs: list[MetricRef] = []
    for match in _IDENTIFIER.finditer(text):
        word, call = match.groups()
        selector = re.fullmatch(r"__selector(\d+)__", word)
        if selector:
            name, matchers = selectors[int(selector.group(1))]
            name = name or _matcher(matchers, "__name__", strings)
            if name:
                refs.append(MetricRef(name, _jobs(matchers, strings), expr))
        elif not call and word.lower() not in KEYWORDS:
            refs.append(MetricRef(word, frozenset(), expr))
    return refs


def _matcher(matchers: str, label: str, strings: list[str], op: str = "=") -> str:
    found = re.search(rf"\b{label}\s*{re.escape(op)}\s*__string(\d+)__", matchers)
    return strings[int(found.group(1))] if found else ""


def _jobs(matchers: str, strings: list[str]) -> frozenset[str]:
    if exact := _matcher(matchers, "job", strings):
        return frozenset({exact})
    if pattern := _matcher(matchers, "job", strings, "=~"):
        return frozenset(pattern.split("|"))
    return frozenset()


def dashboard_exprs(path: Path) -> Iterator[tuple[str, str]]:
    """(panel title, expression) of every target of every panel, rows included."""

    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield panel.get("title", "?"), target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(json.loads(path.read_text())["panels"])


def rule_exprs(path: Path) -> Iterator[tuple[str, str]]:
    """(alert or record name, expression) of every rule."""
    for group in yaml.safe_load(path.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def unexported(refs: list[MetricRef], exported: dict[str, set[str]]) -> list[str]:
    """What ``refs`` read that no scrape job exports (only the jobs a selector names, if it names any)."""
    problems = []
    for ref in refs:
        jobs = sorted(ref.jobs & exported.keys()) if ref.jobs else sorted(exported)
        if any(ref.name in exported[job] for job in jobs):
            continue
        relatives = sorted(n for job in exported for n in exported[job] if family(n) == family(ref.name))
        hint = f"; that family exports {relatives}" if relatives else ""
        where = f"job {'|'.join(sorted(ref.jobs))}" if ref.jobs else "any job"
        problems.append(f"{ref.name} is not exported by {where}{hint}: {ref.expr}")
    return problems
