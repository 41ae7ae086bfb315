"""Draw jobs: check that the beacon was in the future, wait for it and its confirmations, draw.

- ``draws.run(draw_id)`` moves one draw as far as the node allows: ``committed`` → ``waiting`` (or
  ``refused``) → ``confirming`` → ``completed``. It is sent when the draw is committed and by every
  wake-up; it re-reads the node each time and is safe to run twice or at once (``db.draw_states``).
- ``draws.wake()`` reads the tip and sends ``draws.run`` for every draw that can move. ``blocknotify``
  sends it on each block; the scheduler's ``draws_due`` task
  (the ``draws.due`` job type) every 30 s, so draws move without notifications too.

A node that cannot be asked raises ``NodeUnavailable``: Dramatiq retries with backoff, and nothing is
decided without a successful read.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dramatiq
from sqlalchemy import Connection, Engine

from satworks import clock
from satworks.broker.client import payment_sender
from satworks.broker.messages import Delayed
from satworks.db import draw_states as store
from satworks.db import emails as emails_db
from satworks.db.draw_states import DrawResult, WinnerNotice
from satworks.db.draws import DrawRecord, committed_event
from satworks.draws import Beacon, ResolvedBeacon, build_proof, commitment
from satworks.draws.status import COMMITTED_EVENT, DrawStatus, complete, confirm_future, lose_beacon, refuse, see_beacon
from satworks.emails.outbox import Composer
from satworks.errors import BrokerUnavailable, PermanentError
from satworks.integrations.bitcoin.rpc import BitcoinRpc
from satworks.jobs.base import JobContext, JobType, Payload
from satworks.jobs.emails import send_message
from satworks.jobs.payments import InternalActor
from satworks.metrics.draws import DrawMetrics
from satworks.settings import Settings

log = logging.getLogger(__name__)
RUN, WAKE = "draws.run", "draws.wake"
PROOF_GZIP_LEVEL = 6


class CorruptDraw(PermanentError):
    """The stored entries no longer give the stored commitment: never draw on them."""

    code = "corrupt_draw"


def queue_winner_emails(conn: Connection, notices: Sequence[WinnerNotice], composer: Composer) -> list[uuid.UUID]:
    """One ``draw_won`` email row per winner that came with an email, written on ``conn``: the
    transaction that stores the draw's one result (``db.draw_states.complete``), so a draw job that
    runs twice makes none more (its idempotency key is the backstop). Returns the rows made, whose
    sends are enqueued after the commit (the notifications sweep revives them if that fails)."""
    made = [
        email_id
        for notice in notices
        if (email := composer.winner(notice)) is not None
        and (email_id := emails_db.insert_if_new(conn, email)) is not None
    ]
    if len(made) < len(notices):
        skipped = len(notices) - len(made)  # an address that no longer validates, or an email made before
        log.warning(
            "draw winners without a new email",
            extra={"action": "draw_notify_skipped", "draw_id": str(notices[0].draw_id), "count": skipped},
        )
    return made


@dataclass(frozen=True)
class DrawResources:
    settings: Settings
    engine: Engine
    rpc: BitcoinRpc
    enqueue: Callable[[str, tuple[Any, ...], int | None], None]
    composer: Composer
    send_emails: Callable[[Sequence[Delayed]], None]  # the notifications' enqueue; raises BrokerUnavailable
    metrics: DrawMetrics = field(default_factory=lambda: DrawMetrics.create(None))


def wake(res: DrawResources) -> dict[str, int]:
    """Read the node's tip and send ``draws.run`` for each draw that can move."""
    tip = res.rpc.block_count()
    with res.engine.connect() as conn:
        due = store.due(conn, res.settings.bitcoin_network, tip)
    for draw_id in due:
        res.enqueue(RUN, (str(draw_id),), None)
    return {"tip": tip, "due": len(due)}


def run(res: DrawResources, draw_id: str) -> str:
    """Move one draw as far as the node allows; returns what happened (for logs and tests)."""
    with res.engine.connect() as conn:
        draw = store.load(conn, uuid.UUID(draw_id))
    if draw is None or draw.status.is_final:
        return "final"
    if draw.network != res.settings.bitcoin_network:
        log.warning("draw on another network", extra={"action": "draw_other_network", "draw_id": draw_id})
        return "other network"
    if draw.status == DrawStatus.COMMITTED:
        outcome = _check_commit(res, draw)
        if outcome != "waiting":
            return outcome
        draw = dataclasses.replace(draw, status=DrawStatus.WAITING)
    return _advance(res, draw)


def _check_commit(res: DrawResources, draw: DrawRecord) -> str:
    """A committed draw: ``waiting`` when the intake read a tip below the beacon height after the commit
    (``checked_tip``). Otherwise (the intake stopped before it asked) the node is asked now, after the
    commit too: below the height, the draw waits and the app hears ``draw.committed``; at or above it,
    the block may have been known when the entries were fixed, and the draw is refused."""
    if draw.checked_tip is not None:
        reason = f"the node's tip was {draw.checked_tip} after the commit, below the beacon height"
        with res.engine.begin() as conn:
            moved = store.move(conn, draw, confirm_future(draw.status), reason=reason, now=clock.utcnow())
        return "waiting" if moved else "moved elsewhere"
    tip = res.rpc.block_count()
    future = draw.beacon_height > tip
    with res.engine.begin() as conn:
        if future:
            reason = f"the node's tip was {tip} after the commit, below the beacon height"
            moved = store.move(conn, draw, confirm_future(draw.status), reason=reason, now=clock.utcnow())
            if moved:
                store.add_event(conn, draw, COMMITTED_EVENT, committed_event(draw))
        else:
            reason = (
                f"the block at height {draw.beacon_height} already existed when the node was first asked"
                f" (tip {tip}): its hash may have been known when the entries were fixed"
            )
            moved = store.move(conn, draw, refuse(draw.status), reason=reason, now=clock.utcnow())
    if not moved:
        return "moved elsewhere"
    if not future:
        res.metrics.finished.labels("refused").inc()
    log.info("draw beacon checked", extra={"action": "draw_checked", "draw_id": str(draw.id), "tip": tip})
    return "waiting" if future else "refused"


def _advance(res: DrawResources, draw: DrawRecord) -> str:
    """A waiting or confirming draw: follow the block at its height until it has its confirmations."""
    height = draw.beacon_height
    block_hash = res.rpc.get_block_hash(height)
    header = res.rpc.get_block_header(block_hash) if block_hash is not None else None
    if block_hash is None or header is None or header.confirmations < 1:
        if draw.status == DrawStatus.CONFIRMING:
            with res.engine.begin() as conn:
                reason = f"a reorg took block {draw.block_hash} away and left the chain below the beacon height"
                store.move(conn, draw, lose_beacon(draw.status), reason=reason, now=clock.utcnow())
        return "waiting"
    confirmations = header.confirmations
    if draw.status == DrawStatus.WAITING or draw.block_hash != block_hash:
        reason = "beacon block mined" if draw.status == DrawStatus.WAITING else f"a reorg replaced {draw.block_hash}"
        with res.engine.begin() as conn:
            moved = store.move(
                conn,
                draw,
                see_beacon(draw.status),
                reason=reason,
                now=clock.utcnow(),
                block_hash=block_hash,
                confirmations=confirmations,
            )
        if not moved:
            return "moved elsewhere"
        draw = dataclasses.replace(draw, status=DrawStatus.CONFIRMING, block_hash=block_hash)
    if confirmations < draw.required_confirmations:
        with res.engine.begin() as conn:
            store.note_confirmations(conn, draw, confirmations, clock.utcnow())
        return "confirming"
    # Re-read the height: if a reorg swapped the block between the two reads, wait for the next wake-up.
    if res.rpc.get_block_hash(height) != block_hash:
        return "reorging"
    return _draw(res, draw, block_hash, confirmations)


def _draw(res: DrawResources, draw: DrawRecord, block_hash: str, confirmations: int) -> str:
    complete(draw.status)  # refuses before any work if the draw cannot be completed from here
    draw_id = str(draw.id)
    started = time.monotonic()
    with res.engine.connect() as conn:
        entries = store.frozen_entries(conn, draw.id)
    loaded = time.monotonic()
    beacon = Beacon(network=draw.network, height=draw.beacon_height)
    if commitment(entries, k=draw.k, beacon=beacon, draw_id=draw_id) != draw.commitment:
        raise CorruptDraw(f"draw {draw_id}: the stored entries do not give the stored commitment")
    resolved = ResolvedBeacon(network=beacon.network, height=beacon.height, block_hash=block_hash)
    proof = build_proof(draw_id=draw_id, entries=entries, k=draw.k, beacon=resolved, committed=draw.commitment)
    del entries
    selected = time.monotonic()
    document = proof.__pydantic_serializer__.to_json(proof)
    winners = [{"id": w.id, "ticket": w.ticket} for w in proof.winners]
    del proof
    result = DrawResult(block_hash, confirmations, winners, gzip.compress(document, PROOF_GZIP_LEVEL, mtime=0))
    del document
    proved = time.monotonic()
    emailed: list[uuid.UUID] = []

    def on_winners(conn: Connection, notices: Sequence[WinnerNotice]) -> None:
        emailed.extend(queue_winner_emails(conn, notices, res.composer))

    with res.engine.begin() as conn:
        stored = store.complete(conn, draw, result, now=clock.utcnow(), on_winners=on_winners)
    _send_emails(res, draw_id, emailed)
    if stored:
        res.metrics.finished.labels("completed").inc()
        res.metrics.duration.observe(time.monotonic() - started)
    log.info(
        "draw completed" if stored else "draw completed by another job",
        extra={
            "action": "draw_completed" if stored else "draw_completed_elsewhere",
            "draw_id": draw_id,
            "entries": draw.entries_count,
            "load_ms": round((loaded - started) * 1000),
            "select_ms": round((selected - loaded) * 1000),
            "proof_ms": round((proved - selected) * 1000),
            "store_ms": round((time.monotonic() - proved) * 1000),
        },
    )
    return "completed" if stored else "completed elsewhere"


def _send_emails(res: DrawResources, draw_id: str, email_ids: Sequence[uuid.UUID]) -> None:
    """Enqueue the winners' sends; if the broker cannot take them, the notifications sweep will (the
    rows are committed): the draw itself is done, so its job does not fail for that."""
    if not email_ids:
        return
    prefix = res.settings.queue_prefix
    try:
        res.send_emails([(send_message(email_id, prefix), None) for email_id in email_ids])
    except BrokerUnavailable:
        log.warning(
            "winner emails left to the sweep",
            extra={"action": "draw_notify_deferred", "draw_id": draw_id, "count": len(email_ids)},
        )
        return
    log.info("winner emails queued", extra={"action": "draw_notify", "draw_id": draw_id, "count": len(email_ids)})


DRAW_ACTORS = (
    InternalActor(RUN, run, max_retries=30, time_limit_ms=600_000),
    InternalActor(WAKE, wake, max_retries=10, time_limit_ms=120_000),
)


class DuePayload(Payload):
    pass


def send_wake(ctx: JobContext, payload: DuePayload) -> dict[str, Any]:
    """The scheduler's ``draws_due`` task: scheduled work is a job type, so this one sends ``draws.wake``
    through the worker's broker."""
    payment_sender(dramatiq.get_broker(), ctx.settings.queue_prefix)(WAKE, (), None)
    return {"sent": WAKE}


DUE = JobType(
    name="draws.due", payload=DuePayload, run=send_wake, default_priority="high", max_retries=3, internal=True
)
