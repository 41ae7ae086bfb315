"""A report's table as a document: CSV (RFC 4180) or HTML (Jinja2, autoescaped)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import jinja2

from satworks.reports.kinds import Cell, Kind
from satworks.reports.spec import ReportFormat, ReportSpec

CONTENT_TYPES = {ReportFormat.CSV: "text/csv; charset=utf-8", ReportFormat.HTML: "text/html; charset=utf-8"}


@dataclass(frozen=True)
class Document:
    content: bytes
    content_type: str
    filename: str


class Renderer:
    """Holds the Jinja2 environment (templates in ``satworks/reports/templates``), built once."""

    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("satworks.reports", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
        )

    def render(
        self, kind: Kind, spec: ReportSpec, rows: Sequence[tuple[Cell, ...]], *, scope: str, generated_at: datetime
    ) -> Document:
        period = f"{_stamp(spec.from_)}_{_stamp(spec.to)}"
        filename = f"satworks-{kind.name.value}-{period}.{spec.format.value}"
        if spec.format == ReportFormat.CSV:
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(kind.columns)
            writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
            content = out.getvalue().encode()
        else:
            content = (
                self.env.get_template("report.html")
                .render(
                    title=kind.title,
                    kind=kind.name.value,
                    start=spec.from_,
                    end=spec.to,
                    scope=scope,
                    generated_at=generated_at,
                    columns=kind.columns,
                    rows=rows,
                )
                .encode()
            )
        return Document(content, CONTENT_TYPES[spec.format], filename)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
