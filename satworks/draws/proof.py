"""The public proof of a draw and its verification from the document alone.

A proof holds everything that decided the winners: the algorithm version, the draw id, the entries
(ids and tickets, no contact data), k, the beacon with its block hash, the commitment made before the
block existed and the winners with their ticket numbers. ``verify`` recomputes the commitment from
the entries and the winners from (block hash, commitment, draw id); it trusts nothing else in the
document. Whether the block hash really is the block at that height is for the reader to check
against any node or block explorer (``satworks draw verify --node``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, with_config
from typing_extensions import TypedDict

from satworks.draws.beacon import Hex32, ResolvedBeacon
from satworks.draws.commitment import ALGORITHM, commitment
from satworks.draws.entries import MAX_TICKETS, CanonicalEntries, InvalidDraw, canonical_entries, validate_draw_id
from satworks.draws.selection import Winner, draw_seed, select_winners

_Count = Annotated[StrictInt, Field(ge=1, le=MAX_TICKETS)]


@with_config(ConfigDict(extra="forbid"))
class ProofEntry(TypedDict):
    """A plain dict, not a model: a million of them validate about three times faster."""

    id: StrictStr
    tickets: _Count


class ProofWinner(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: StrictStr
    ticket: _Count  # 1-based, in canonical ticket order


class DrawProof(BaseModel):
    """The proof document, as served at ``/v1/draws/{id}/proof`` and read by the CLI and the browser page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: Literal["satworks-draw-v1"] = ALGORITHM
    draw_id: StrictStr
    k: _Count
    beacon: ResolvedBeacon
    commitment: Hex32
    entries: list[ProofEntry] = Field(min_length=1)  # canonical order
    winners: list[ProofWinner]  # in draw order


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    reason: str  # one line: what matched, or the first thing that did not
    commitment: str | None = None  # recomputed (None when the proof is invalid)
    winners: tuple[Winner, ...] = ()  # recomputed


def build_proof(
    *, draw_id: str, entries: CanonicalEntries, k: int, beacon: ResolvedBeacon, committed: str | None = None
) -> DrawProof:
    """Select the winners and write the proof. ``committed`` is the stored commitment (recomputed when None)."""
    validate_draw_id(draw_id)
    committed = committed or commitment(entries, k=k, beacon=beacon, draw_id=draw_id)
    winners = select_winners(entries, k, draw_seed(beacon.block_hash, committed, draw_id))
    return DrawProof.model_construct(  # every field is built here from validated values
        algorithm=ALGORITHM,
        draw_id=draw_id,
        k=k,
        beacon=beacon,
        commitment=committed,
        entries=[ProofEntry(id=i, tickets=t) for i, t in zip(entries.ids, entries.tickets, strict=True)],
        winners=[ProofWinner.model_construct(id=w.id, ticket=w.ticket) for w in winners],
    )


def verify(proof: DrawProof) -> VerifyResult:
    """Recompute the commitment and the winners; ``ok`` only if both match the proof exactly."""
    try:
        validate_draw_id(proof.draw_id)
        entries = canonical_entries(((e["id"], e["tickets"]) for e in proof.entries), k=proof.k)
    except InvalidDraw as exc:
        return VerifyResult(False, f"invalid proof: {exc.message.removeprefix('invalid draw: ')}")
    if entries.ids != [e["id"] for e in proof.entries]:
        return VerifyResult(False, "invalid proof: entries are not in canonical order (ascending id code points)")
    expected = commitment(entries, k=proof.k, beacon=proof.beacon, draw_id=proof.draw_id)
    if expected != proof.commitment:
        inputs = "the draw id, beacon, k and entries"
        return VerifyResult(False, f"commitment mismatch: {inputs} give {expected}, the proof says {proof.commitment}")
    winners = tuple(select_winners(entries, proof.k, draw_seed(proof.beacon.block_hash, expected, proof.draw_id)))
    stated = tuple(Winner(w.id, w.ticket) for w in proof.winners)
    if len(stated) != len(winners):
        return VerifyResult(
            False, f"winners mismatch: the proof lists {len(stated)} winners, k is {proof.k}", expected, winners
        )
    for rank, (mine, theirs) in enumerate(zip(winners, stated, strict=True), start=1):
        if mine != theirs:
            return VerifyResult(
                False,
                f"winner {rank} mismatch: recomputed {mine.id!r} with ticket {mine.ticket}, "
                f"the proof says {theirs.id!r} with ticket {theirs.ticket}",
                expected,
                winners,
            )
    return VerifyResult(
        True,
        f"commitment {expected} and all {len(winners)} winners match "
        f"(block {proof.beacon.block_hash} at height {proof.beacon.height} on {proof.beacon.network})",
        expected,
        winners,
    )
