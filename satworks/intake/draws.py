"""Submitting draws, the one way, and the draws' wake-up.

``DrawIntake.submit`` validates the body, freezes the entries and computes the commitment
(``draws.submission.prepare_draw``), records the draw, then asks the node for its tip: only a tip read
after the entries were stored proves nobody knew the beacon block's hash when they were fixed. A
beacon height the chain has reached is 422 and the draw is deleted again (as when the node or the
broker cannot be reached: 503); otherwise the tip is stored with the draw and its first ``draws.run``
is sent.

Bodies above ``INLINE_MAX_BYTES`` are prepared in a separate process: parsing and sorting a million
entries are single C calls of a second or more that hold the GIL, which a thread would not keep off
the event loop. The pool has ``draw_prepare_processes`` processes (default 1), started on first use.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import secrets
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import dramatiq
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks import clock
from satworks.broker.client import BrokerClient
from satworks.broker.messages import payment_message
from satworks.db import draws as draws_db
from satworks.db.draws import DrawRecord, NewDraw
from satworks.draws import ALGORITHM, DrawLimits
from satworks.draws.status import DrawStatus
from satworks.draws.submission import DrawRules, PreparedDraw, prepare_draw
from satworks.errors import (
    BadRequest,
    Conflict,
    DependencyUnavailable,
    NodeUnavailable,
    SatworksError,
    ValidationFailed,
)
from satworks.intake import idempotency
from satworks.integrations.bitcoin.rpc import BitcoinRpc
from satworks.jobs.draws import RUN, WAKE
from satworks.settings import Settings

log = logging.getLogger(__name__)
INLINE_MAX_BYTES = 64 * 1024  # about a thousand entries: prepared in a few milliseconds, on the loop


def draw_rules(settings: Settings) -> DrawRules:
    return DrawRules(
        limits=DrawLimits(
            max_entries=settings.draw_max_entries,
            max_total_tickets=settings.draw_max_total_tickets,
            max_id_bytes=settings.draw_max_id_bytes,
            max_winners=settings.draw_max_winners,
        ),
        network=settings.bitcoin_network,
        default_confirmations=settings.draw_default_confirmations,
        min_confirmations=settings.effective_draw_min_confirmations,
    )


@dataclass(frozen=True)
class _Refused:
    """A request error raised in the preparing process, carried back as plain values."""

    kind: type[SatworksError]
    code: str
    message: str
    details: Any

    def error(self) -> SatworksError:
        exc = self.kind(self.message, details=self.details)
        exc.code = self.code
        return exc


def _prepare_apart(raw: bytes, draw_id: str, rules: DrawRules) -> PreparedDraw | _Refused:
    """``prepare_draw`` in the pool's process; request errors come back as values (``InvalidDraw`` does
    not survive pickling)."""
    gc.disable()  # a million fresh dicts would make every collection walk them all: about twice as fast
    try:
        return prepare_draw(raw, draw_id=draw_id, rules=rules)
    except (BadRequest, ValidationFailed) as exc:
        return _Refused(
            BadRequest if isinstance(exc, BadRequest) else ValidationFailed, exc.code, exc.message, exc.details
        )
    finally:
        gc.enable()


def _replayed(existing: DrawRecord, prepared: PreparedDraw) -> DrawRecord:
    """The draw an earlier request with this key made, if this one is its replay. A draw still being
    checked (the first request has not read the node's tip yet, and may yet delete it) is a 409."""
    idempotency.check_replay("draw", existing.id, existing.request_hash, prepared.request_hash)
    if existing.status == DrawStatus.COMMITTED and existing.checked_tip is None:
        raise Conflict(
            "a request with this idempotency key is still being committed; retry", details={"draw_id": str(existing.id)}
        )
    return existing


class DrawIntake:
    def __init__(self, engine: AsyncEngine, client: BrokerClient, settings: Settings) -> None:
        self._engine = engine
        self._client = client
        self._rpc = BitcoinRpc(settings.bitcoind_rpc_url, timeout_s=min(settings.bitcoind_rpc_timeout_s, 5.0))
        self._prefix = settings.queue_prefix
        self._rules = draw_rules(settings)
        self._processes = settings.draw_prepare_processes
        self._pool: ProcessPoolExecutor | None = None
        #: bodies being prepared in the pool right now (a gauge for metrics and tests)
        self.preparing = 0

    async def submit(self, app_id: uuid.UUID, raw: bytes, header_key: str | None) -> tuple[DrawRecord, bool]:
        """Record a draw from its JSON body and send its first job; returns ``(draw, replayed)``.

        Raises ``BadRequest`` (not JSON), ``ValidationFailed`` (422: a rule, or a beacon height the chain
        has reached; nothing is stored), ``Conflict`` (the idempotency key was used with another body)
        or ``DependencyUnavailable`` (the database, the broker or the node; nothing is kept).
        """
        started = time.monotonic()
        prepared = await self._prepare(raw, str(uuid.uuid4()))
        del raw
        prepared_at = time.monotonic()
        key = idempotency.resolve(header_key, prepared.idempotency_key)
        if key is not None:
            existing = await draws_db.by_idempotency_key(self._engine, app_id, key)
            if existing is not None:
                return _replayed(existing, prepared), True
        stored = await draws_db.insert_draw(self._engine, self._new_draw(app_id, prepared, key))
        if stored is None:  # the key was taken meanwhile: a replay, or a conflict
            assert key is not None
            existing = await draws_db.by_idempotency_key(self._engine, app_id, key)
            if existing is None:
                raise DependencyUnavailable("concurrent request failed, retry")
            return _replayed(existing, prepared), True
        stored_at = time.monotonic()
        finished = False
        try:
            # Asked after the commit: a tip below the beacon height now was below it when the entries were fixed.
            tip = await self._tip_below(prepared)
            stored = await draws_db.mark_checked(self._engine, stored, tip)
            await self._send(payment_message(RUN, (str(stored.id),), self._prefix))
            finished = True
        finally:
            if not finished:  # the beacon height reached, the node or the broker down: nothing is kept
                await draws_db.delete_unstarted(self._engine, stored.id)
        log.info(
            "draw committed",
            extra={
                "action": "draw_committed",
                "draw_id": str(stored.id),
                "entries": stored.entries_count,
                "prepare_ms": round((prepared_at - started) * 1000),
                "store_ms": round((stored_at - prepared_at) * 1000),
                "enqueue_ms": round((time.monotonic() - stored_at) * 1000),
            },
        )
        return stored, False

    async def wake(self) -> None:
        """A node saw a new block: read the tip and run the draws that can move."""
        await self._send(payment_message(WAKE, (), self._prefix))

    def close(self) -> None:
        self._rpc.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def _prepare(self, raw: bytes, draw_id: str) -> PreparedDraw:
        if len(raw) <= INLINE_MAX_BYTES:
            return prepare_draw(raw, draw_id=draw_id, rules=self._rules)
        self.preparing += 1
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(
                self._executor(), _prepare_apart, raw, draw_id, self._rules
            )
        except BrokenProcessPool as exc:  # the process died (out of memory?): a fresh pool next time
            self.close()
            raise DependencyUnavailable("the draw could not be prepared; retry") from exc
        finally:
            self.preparing -= 1
        if isinstance(outcome, _Refused):
            raise outcome.error()
        return outcome

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self._processes, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def _tip_below(self, prepared: PreparedDraw) -> int:
        """The node's tip, if below the beacon height (one ``getblockcount``, in a thread); else 422. A
        node that cannot be asked is 503."""
        try:
            tip = await asyncio.to_thread(self._rpc.block_count)
        except NodeUnavailable as exc:
            raise DependencyUnavailable("the Bitcoin node cannot be asked for its tip; retry") from exc
        if prepared.beacon.height <= tip:
            raise ValidationFailed(
                f"beacon height {prepared.beacon.height} is not in the future: the node's tip is {tip}",
                details=[
                    {
                        "loc": ["beacon", "height"],
                        "msg": f"must be above {tip}, the node's tip",
                        "type": "beacon_not_in_future",
                        "tip_height": tip,
                    }
                ],
            )
        return tip

    def _new_draw(self, app_id: uuid.UUID, prepared: PreparedDraw, key: str | None) -> NewDraw:
        return NewDraw(
            id=uuid.UUID(prepared.draw_id),
            app_id=app_id,
            raffle_id=prepared.raffle_id,
            algorithm=ALGORITHM,
            commitment=prepared.commitment,
            network=prepared.beacon.network,
            beacon_height=prepared.beacon.height,
            required_confirmations=prepared.confirmations,
            k=prepared.k,
            entries_count=prepared.entries_count,
            total_tickets=prepared.total_tickets,
            metadata=prepared.metadata,
            notify=prepared.notify,
            public_token=secrets.token_urlsafe(16),  # 128 random bits
            idempotency_key=key,
            request_hash=prepared.request_hash,
            created_at=clock.utcnow(),
            packed_entries=prepared.packed_entries,
            packed_emails=prepared.packed_emails,
            emails_count=prepared.emails_count,
        )

    async def _send(self, message: dramatiq.Message[Any]) -> None:
        await self._client.enqueue([(message, None)])
