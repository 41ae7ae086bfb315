"""The payment request model accepted by ``POST /v1/payments``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from satworks.emails.addresses import EmailAddress
from satworks.payments.amounts import MAX_SAT

MAX_METADATA_BYTES = 4096


def _two_decimals(schema: dict[str, Any]) -> None:
    """What the server enforces, in the OpenAPI document: 0 <= x < 100 with at most two decimals."""
    schema["anyOf"] = [
        {"type": "number", "minimum": 0, "exclusiveMaximum": 100, "multipleOf": 0.01},
        {"type": "string", "pattern": r"^\d{1,2}(\.\d{1,2})?$"},
    ]


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["onchain", "lightning"] = Field(
        description="`onchain` (a fresh address) or `lightning` (a BOLT11 invoice from lnd). `confirmations`,"
        " `address`, `payment_tolerance` and `monitoring_s` are on-chain only: refused for `lightning`."
    )
    amount_sat: StrictInt = Field(gt=0, le=MAX_SAT, description="Integer satoshis.")
    memo: str | None = Field(None, max_length=500)
    expires_in: StrictInt = Field(3600, ge=1, le=30 * 24 * 3600, description="Seconds until expiry.")
    confirmations: StrictInt = Field(
        1,
        ge=0,
        le=100,
        description="0: settled once the whole amount is in the node's mempool, whether or not it signals RBF; "
        "such a payment can still be replaced until mined, and then turns invalid (docs/algorithms.md).",
    )
    address: str | None = Field(None, max_length=100, description="Watch this address instead of a new one.")
    payment_tolerance: Decimal = Field(
        Decimal(0),
        ge=0,
        lt=100,
        decimal_places=2,
        description='Percent, at most two decimals: a number or a string such as `"2.5"`.',
        json_schema_extra=_two_decimals,
    )
    monitoring_s: StrictInt = Field(86_400, ge=0, le=7 * 24 * 3600, description="Late money is seen this long.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(None, min_length=1, max_length=255)
    receipt_email: EmailAddress | None = Field(
        None, max_length=320, description="Send a `payment_settled` receipt here when the payment settles."
    )

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must serialise to at most {MAX_METADATA_BYTES} bytes")
        return value
