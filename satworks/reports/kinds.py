"""Each report kind: its title, its table's columns, and how one aggregate row becomes a table row."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from satworks.db import reports as db
from satworks.reports.spec import ReportKind

Cell = str | int | float | None


@dataclass(frozen=True)
class Kind:
    name: ReportKind
    title: str
    columns: tuple[str, ...]
    query: Callable[[Connection, datetime, datetime, uuid.UUID | None], list[Any]]
    row: Callable[[Any], tuple[Cell, ...]]


def _seconds(values: Sequence[float] | None, count: int) -> list[float | None]:
    """Percentiles (seconds, to the millisecond); ``None`` each where nothing was measured."""
    if values is None:
        return [None] * count
    return [round(float(v), 3) if v is not None else None for v in values]


def _payment_row(r: Any) -> tuple[Cell, ...]:
    return (r.status, r.method, r.count, r.amount_sat, r.received_sat, *_seconds(r.settle_s, 3))


def _job_row(r: Any) -> tuple[Cell, ...]:
    subtotal = r.status == "*"  # a failure rate means something over a type (or all), not within one status
    rate = round(r.failures / r.outcomes, 4) if subtotal and r.outcomes else None
    return (r.type, r.status, r.count, rate, *_seconds(r.duration_s, 2))


KINDS: dict[ReportKind, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            ReportKind.PAYMENTS,
            "Payments",
            (
                "status",
                "method",
                "count",
                "amount_sat",
                "received_sat",
                "settle_p50_s",
                "settle_p90_s",
                "settle_p99_s",
            ),
            db.payments,
            _payment_row,
        ),
        Kind(
            ReportKind.JOBS,
            "Jobs",
            ("type", "status", "count", "failure_rate", "duration_p50_s", "duration_p95_s"),
            db.jobs,
            _job_row,
        ),
    )
}
