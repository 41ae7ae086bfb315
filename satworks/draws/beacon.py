"""The public randomness a draw waits for: a Bitcoin block at a height fixed before it is mined."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

BitcoinNetwork = Literal["mainnet", "testnet", "signet", "regtest"]
#: 32 bytes as 64 lowercase hex digits, in the order Bitcoin Core prints block hashes.
Hex32 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
MAX_HEIGHT = 2**32 - 1


class Beacon(BaseModel):
    """Which block will decide the draw: committed to with the entries, before that block exists."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["bitcoin_block"] = "bitcoin_block"
    network: BitcoinNetwork
    height: Annotated[StrictInt, Field(ge=0, le=MAX_HEIGHT)]


class ResolvedBeacon(Beacon):
    """The beacon once its block is mined and confirmed: ``block_hash`` as ``getblockhash`` prints it."""

    block_hash: Hex32
