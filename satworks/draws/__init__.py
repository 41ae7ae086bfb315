"""Provably fair raffle draws: pure functions, no I/O (the specification is docs/draws.md).

``canonical_entries`` validates and orders the entries, ``commitment`` fixes them before the beacon
block exists, ``select_winners`` picks the winners from (block hash, commitment, draw id), and
``DrawProof`` / ``verify`` let anyone recompute both from a public document.
"""

from __future__ import annotations

from satworks.draws.beacon import Beacon, BitcoinNetwork, ResolvedBeacon
from satworks.draws.commitment import ALGORITHM, commitment, commitment_preimage
from satworks.draws.entries import SPEC_LIMITS, CanonicalEntries, DrawLimits, InvalidDraw, canonical_entries
from satworks.draws.proof import DrawProof, ProofEntry, ProofWinner, VerifyResult, build_proof, verify
from satworks.draws.selection import Round, Stream, Winner, draw_seed, select_winners

__all__ = [
    "ALGORITHM",
    "SPEC_LIMITS",
    "Beacon",
    "BitcoinNetwork",
    "CanonicalEntries",
    "DrawLimits",
    "DrawProof",
    "InvalidDraw",
    "ProofEntry",
    "ProofWinner",
    "ResolvedBeacon",
    "Round",
    "Stream",
    "VerifyResult",
    "Winner",
    "build_proof",
    "canonical_entries",
    "commitment",
    "commitment_preimage",
    "draw_seed",
    "select_winners",
    "verify",
]
