"""The draw request accepted by ``POST /v1/draws``.

``DrawIn`` documents the whole body (the OpenAPI document is generated from it). At run time the
fields other than ``entries`` are validated by ``DrawFields`` and the entries, up to a million of
them, by ``submission.entry_columns`` with whole-list passes and the same rules (``EntryIn``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator, with_config
from typing_extensions import TypedDict

from satworks.draws.beacon import MAX_HEIGHT, BitcoinNetwork

MAX_METADATA_BYTES = 4096
MAX_CONFIRMATIONS = 100
MAX_EMAIL_LENGTH = 254
#: One "@" between two non-empty parts, no whitespace or control characters. Addresses are checked for
#: real (email-validator) when an email is sent, not here: a million of them would take seconds.
EMAIL_PATTERN = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"
_NO_CONTROLS = r"^[^\x00-\x1f\x7f]+$"


class BeaconIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["bitcoin_block"] = Field(description="Only `bitcoin_block` so far.")
    height: StrictInt = Field(
        ge=0, le=MAX_HEIGHT, description="A block height above the chain's tip when the draw is submitted."
    )
    network: BitcoinNetwork | None = Field(None, description="Optional; must be the network satworks watches.")


@with_config(ConfigDict(extra="forbid"))
class EntryIn(TypedDict):
    id: Annotated[StrictStr, Field(min_length=1, description="Distinct, at most 128 UTF-8 bytes (a setting).")]
    tickets: Annotated[StrictInt, Field(ge=1, description="The entry's chance is proportional to it.")]
    email: NotRequired[
        Annotated[
            StrictStr,
            Field(max_length=MAX_EMAIL_LENGTH, pattern=EMAIL_PATTERN, description="Kept only with `notify`."),
        ]
    ]


class DrawFields(BaseModel):
    """Every field of a draw request but ``entries``."""

    model_config = ConfigDict(extra="forbid")

    raffle_id: StrictStr = Field(min_length=1, max_length=128, pattern=_NO_CONTROLS)
    winners: StrictInt = Field(ge=1, description="k: how many distinct entries win.")
    beacon: BeaconIn
    confirmations: StrictInt | None = Field(
        None,
        ge=1,
        le=MAX_CONFIRMATIONS,
        description="Confirmations of the beacon block before the draw (default 6; the minimum is a setting).",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    notify: StrictBool = Field(False, description="Email the winners that have an email.")
    idempotency_key: StrictStr | None = Field(None, min_length=1, max_length=255)

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(value)
        if len(text) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must serialise to at most {MAX_METADATA_BYTES} bytes")
        if "\\u0000" in text:  # Postgres jsonb cannot hold U+0000
            raise ValueError("metadata must not contain U+0000")
        return value


class DrawIn(DrawFields):
    entries: list[EntryIn] = Field(min_length=1, description="At most 1,000,000 (a setting).")
