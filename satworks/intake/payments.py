"""Creating payment requests, and the wake-ups nodes and payment watchers send.

The intake never calls the node: it records the request and enqueues the job that does
(``payments.create_address``, or a first check for an address the app supplied). Wake-ups only
enqueue checks; the checks re-read the truth from the node.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import dramatiq
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks import clock
from satworks.broker.client import BrokerClient
from satworks.broker.messages import payment_message
from satworks.db import payment_requests as requests_db
from satworks.db.payment_requests import NewPayment
from satworks.db.payments import PaymentRecord
from satworks.errors import DependencyUnavailable, ValidationFailed
from satworks.intake import idempotency
from satworks.integrations.bitcoin.address import Network, canonical_address
from satworks.jobs.lightning import CREATE_INVOICE
from satworks.jobs.payments import CHECK, CHECK_TX, CREATE_ADDRESS, SWEEP
from satworks.payments.request import PaymentIn
from satworks.payments.status import PaymentStatus

WATCHER = "payments"  # the source name of signed watcher events in ``webhook_receipts``
LIGHTNING = "lightning"
ONCHAIN_ONLY = ("address", "confirmations", "payment_tolerance", "monitoring_s")
MAX_MEMO_BYTES = 639  # a BOLT11 description holds at most 639 bytes (UTF-8)
MAX_INVOICE_SAT = 100_000 * 100_000_000  # lnd refuses invoices above 100,000 BTC


class PaymentIntake:
    def __init__(self, engine: AsyncEngine, client: BrokerClient, *, queue_prefix: str, network: Network) -> None:
        self._engine = engine
        self._client = client
        self._prefix = queue_prefix
        self._network = network

    async def create(
        self, app_id: uuid.UUID, spec: PaymentIn, idempotency_key: str | None
    ) -> tuple[PaymentRecord, bool]:
        """Record a payment request and enqueue its first job; returns ``(payment, replayed)``.

        Raises ``ValidationFailed`` (an address of another network, a bad key), ``Conflict`` (the key
        was used with another body, or the address is watched already) or ``DependencyUnavailable``
        (the database or the broker; the request is deleted again)."""
        new = self._new_payment(app_id, spec, idempotency_key)
        stored = await requests_db.insert_request(self._engine, new)
        if stored is None:  # the key is taken: a replay, or a conflict
            assert idempotency_key is not None
            existing = await requests_db.by_idempotency_key(self._engine, app_id, idempotency_key)
            if existing is None:  # the other request vanished (its first message failed): try again
                raise DependencyUnavailable("concurrent request failed, retry")
            idempotency.check_replay("payment", existing.id, existing.request_hash, new.request_hash)
            return existing, True
        enqueued = False
        try:
            await self._send(first_message(stored, self._prefix))
            enqueued = True
        finally:
            if not enqueued:  # the broker refused: undo the record
                await requests_db.delete_unstarted(self._engine, stored.id)
        return stored, False

    async def recheck_tx(self, txid: str) -> None:
        """A node said ``txid`` changed: check the requests it pays."""
        await self._send(payment_message(CHECK_TX, (txid,), self._prefix))

    async def sweep(self) -> None:
        """A node saw a new block: sweep every monitored request."""
        await self._send(payment_message(SWEEP, (), self._prefix))

    async def watcher_event(self, payment_id: uuid.UUID, event_id: str) -> None:
        """A signed watcher event about ``payment_id``: check it, once per event id. Raises ``NotFound``,
        ``Conflict`` for a replayed event, ``DependencyUnavailable`` (then the event may be sent again)."""
        await requests_db.record_webhook(self._engine, WATCHER, event_id, payment_id)
        enqueued = False
        try:
            await self._send(payment_message(CHECK, (str(payment_id),), self._prefix))
            enqueued = True
        finally:
            if not enqueued:  # forget the receipt so the watcher's retry is accepted
                await requests_db.forget_webhook(self._engine, WATCHER, event_id)

    async def _send(self, message: dramatiq.Message[Any]) -> None:
        await self._client.enqueue([(message, None)])

    def _new_payment(self, app_id: uuid.UUID, spec: PaymentIn, key: str | None) -> NewPayment:
        lightning = spec.method == LIGHTNING
        if lightning:
            _check_lightning(spec)
        elif spec.address is not None:
            # One spelling per destination (bech32 in lower case) before the uniqueness check and the hash:
            # an address in upper case is the same address, not a new one another app could claim.
            address = canonical_address(spec.address, self._network)
            if address is None:
                raise ValidationFailed(
                    f"address is not a valid {self._network} address", details=[{"loc": ["address"]}]
                )
            spec = spec.model_copy(update={"address": address})
        if key is not None:
            idempotency.check(key)
        now = clock.utcnow()
        return NewPayment(
            id=uuid.uuid4(),
            app_id=app_id,
            method=spec.method,
            status=PaymentStatus.NEW if spec.address else PaymentStatus.CREATING,
            amount_sat=spec.amount_sat,
            # Lightning has no confirmations, tolerance (lnd refuses less than asked) or late money.
            required_confirmations=0 if lightning else spec.confirmations,
            tolerance_pct=Decimal(0) if lightning else spec.payment_tolerance,
            monitoring_s=0 if lightning else spec.monitoring_s,
            address=spec.address,
            address_supplied=spec.address is not None,
            memo=spec.memo,
            metadata=spec.metadata,
            idempotency_key=key,
            request_hash=_request_hash(spec),
            created_at=now,
            expires_at=now.replace(microsecond=0) + timedelta(seconds=spec.expires_in),  # whole seconds, as the node
            receipt_email=spec.receipt_email,
        )


def first_message(payment: PaymentRecord, prefix: str) -> dramatiq.Message[Any]:
    """A new request's first job: an address or an invoice from the node, or at once a check of the
    supplied address."""
    if payment.address_supplied:
        return payment_message(CHECK, (str(payment.id), 0), prefix)
    return creation_message(payment.id, payment.method, prefix)


def creation_message(payment_id: uuid.UUID, method: str, prefix: str) -> dramatiq.Message[Any]:
    """The job that takes a ``creating`` request to ``new``: its invoice (lightning) or its address."""
    return payment_message(CREATE_INVOICE if method == LIGHTNING else CREATE_ADDRESS, (str(payment_id),), prefix)


def _check_lightning(spec: PaymentIn) -> None:
    """What lnd would refuse, or what has no meaning for an invoice, is a 422 before anything is stored."""
    problems: list[dict[str, Any]] = [
        {"loc": [name], "msg": f"{name} is for on-chain payments only", "type": "onchain_only"}
        for name in ONCHAIN_ONLY
        if name in spec.model_fields_set
    ]
    if spec.memo is not None and len(spec.memo.encode()) > MAX_MEMO_BYTES:
        problems.append(
            {"loc": ["memo"], "msg": f"at most {MAX_MEMO_BYTES} bytes (UTF-8) in an invoice", "type": "too_long"}
        )
    if spec.amount_sat > MAX_INVOICE_SAT:
        problems.append({"loc": ["amount_sat"], "msg": f"lnd takes at most {MAX_INVOICE_SAT} sat", "type": "too_large"})
    if problems:
        raise ValidationFailed("invalid lightning payment request: " + problems[0]["msg"], details=problems)


def _request_hash(spec: PaymentIn) -> str:
    body = spec.model_dump(mode="json", exclude={"idempotency_key"})
    if body.get("receipt_email") is None:  # the hash of a request without one is what it was before the field
        body.pop("receipt_email", None)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
