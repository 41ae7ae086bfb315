"""The job request model, shared by the HTTP intake and the CLI."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

MAX_DELAY_S = 7 * 24 * 3600  # the brokers' delay limit; longer waits belong to the scheduler


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _known_types(schema: dict[str, Any]) -> None:
    """The catalog's job types, listed in the OpenAPI document (any other type is a 422)."""
    from satworks.jobs.catalog import JOB_TYPES

    schema["enum"] = sorted(JOB_TYPES)


class JobIn(Strict):
    type: str = Field(
        min_length=1, max_length=64, description="A job type of the catalog.", json_schema_extra=_known_types
    )
    payload: dict[str, Any] = Field(default_factory=dict, description="Validated by the job type's model.")
    priority: Literal["high", "normal", "low"] | None = Field(
        None, description="high → queue `critical`, normal → `default`, low → `bulk`. Default: the type's."
    )
    run_at: AwareDatetime | None = Field(None, description="RFC 3339 time to run at (at most 7 days ahead).")
    delay_seconds: int | None = Field(None, ge=0, le=MAX_DELAY_S)
    idempotency_key: str | None = Field(None, min_length=1, max_length=255)
    max_retries: int | None = Field(None, ge=0, le=25, description="Default: the job type's.")

    @model_validator(mode="after")
    def _one_schedule(self) -> JobIn:
        if self.run_at is not None and self.delay_seconds is not None:
            raise ValueError("give run_at or delay_seconds, not both")
        return self
