"""What a report covers: kind, period, format, scope. The ``report`` job's payload and the API's body."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from satworks.jobs.base import Payload

MAX_SPAN = timedelta(days=366)


class ReportKind(StrEnum):
    #: payment requests created in the period: counts and sums by status and method, settlement times
    PAYMENTS = "payments"
    #: jobs created in the period: counts by type and status, failure rate, run durations
    JOBS = "jobs"


class ReportFormat(StrEnum):
    CSV = "csv"
    HTML = "html"


class ReportSpec(Payload):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)

    kind: ReportKind
    from_: AwareDatetime = Field(alias="from", description="Start of the period (RFC 3339 with a zone), included.")
    to: AwareDatetime = Field(description="End of the period, excluded; at most 366 days after `from`.")
    format: ReportFormat = ReportFormat.CSV
    all_apps: bool = Field(False, description="Every app's data (admin keys only); default: the caller's app.")

    @model_validator(mode="after")
    def _period(self) -> ReportSpec:
        if self.to <= self.from_:
            raise ValueError("`to` must be after `from`")
        if self.to - self.from_ > MAX_SPAN:
            raise ValueError("a report covers at most 366 days")
        return self
