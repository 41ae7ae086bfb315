"""The payer's side: what SendPaymentV2 accepts, and the node's payment records, with lnd's rules.

Before any HTLC is sent lnd refuses, as a plain (UNKNOWN) error: an undecodable or other-network
request, an expired one ("invoice expired. Valid until ..."), ``amt`` on a request that has an
amount, none on a zero-amount one. A payment hash this node already paid or is paying is refused
with ALREADY_EXISTS ("invoice is already paid" / "payment is in transition"); a FAILED one may
be tried again. Paying an invoice another node already paid reaches the payee, which fails it:
FAILED with FAILURE_REASON_INCORRECT_PAYMENT_DETAILS.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import grpc

from satworks.devnodes.lnd import bolt11
from satworks.devnodes.lnd.journal import Journal
from satworks.devnodes.lnd.refusal import Refused, unknown
from satworks.integrations.lnd.protos import lightning_pb2, router_pb2

Status = lightning_pb2.Payment.PaymentStatus
Reason = lightning_pb2.PaymentFailureReason
_BYTES_FIELDS = ("payment_hash", "preimage")
NO_PREIMAGE = bytes(32)


@dataclass(frozen=True)
class PaymentIntent:
    dest: bytes
    amt_msat: int
    payment_hash: bytes
    payment_addr: bytes
    payment_request: str
    allow_self_payment: bool


def intent_of(request: router_pb2.SendPaymentRequest, *, network: str, now: float) -> PaymentIntent:
    """What ``request`` asks to pay; raises ``Refused`` as lnd's ``extractIntentFromSendRequest`` does."""
    if request.amt and request.amt_msat:
        raise unknown("sat and msat arguments are mutually exclusive")
    if request.amt < 0 or request.amt_msat < 0:
        raise unknown("amount cannot be negative")
    amt_msat = request.amt * 1000 or request.amt_msat
    if not request.payment_request:
        if len(request.dest) != 33:
            raise unknown(f"invalid vertex length of {len(request.dest)}, want 33")
        if len(request.payment_hash) != 32:
            raise unknown(f"invalid hash length of {len(request.payment_hash)}, want 32")
        if amt_msat == 0:
            raise unknown("amount must be specified when paying without a payment request")
        return PaymentIntent(
            request.dest, amt_msat, request.payment_hash, request.payment_addr, "", request.allow_self_payment
        )
    if request.dest or request.payment_hash:
        raise unknown("dest and payment_hash cannot appear together with payment_request")
    try:
        decoded = bolt11.decode(request.payment_request, network=network)
    except bolt11.InvalidPaymentRequest as exc:
        raise unknown(str(exc)) from None
    if now > decoded.expires_at:
        valid_until = datetime.fromtimestamp(decoded.expires_at, UTC).isoformat()
        raise unknown(f"invoice expired. Valid until {valid_until}")
    if decoded.payment_secret is None:
        raise unknown("payment request must contain either a payment address or blinded paths")
    if decoded.amount_msat is None:
        if amt_msat == 0:
            raise unknown("amount must be specified when paying a zero amount invoice")
    elif amt_msat:
        raise unknown("amount must not be specified when paying a non-zero amount invoice")
    return PaymentIntent(
        dest=decoded.payee,
        amt_msat=decoded.amount_msat or amt_msat,
        payment_hash=decoded.payment_hash,
        payment_addr=decoded.payment_secret,
        payment_request=request.payment_request,
        allow_self_payment=request.allow_self_payment,
    )


@dataclass
class Payment:
    payment_hash: bytes
    value_msat: int
    payment_request: str
    creation_time_ns: int
    payment_index: int
    status: int = Status.IN_FLIGHT
    failure_reason: int = Reason.FAILURE_REASON_NONE
    preimage: bytes = NO_PREIMAGE
    fee_msat: int = 0

    @property
    def final(self) -> bool:
        return self.status in (Status.SUCCEEDED, Status.FAILED)

    def to_proto(self) -> lightning_pb2.Payment:
        return lightning_pb2.Payment(
            payment_hash=self.payment_hash.hex(),
            payment_preimage=self.preimage.hex(),
            value_sat=self.value_msat // 1000,
            value_msat=self.value_msat,
            payment_request=self.payment_request,
            status=Status.ValueType(self.status),
            fee_sat=self.fee_msat // 1000,
            fee_msat=self.fee_msat,
            creation_time_ns=self.creation_time_ns,
            payment_index=self.payment_index,
            failure_reason=Reason.ValueType(self.failure_reason),
        )

    def record(self) -> dict[str, Any]:
        doc = asdict(self)
        for name in _BYTES_FIELDS:
            doc[name] = doc[name].hex()
        return doc

    @classmethod
    def from_record(cls, doc: dict[str, Any]) -> Payment:
        fields = {k: v for k, v in doc.items() if k != "kind"}
        for name in _BYTES_FIELDS:
            fields[name] = bytes.fromhex(fields[name])
        return cls(**fields)


class PaymentStore:
    """This node's outgoing payments by hash, and the streams watching them."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._payments: dict[bytes, Payment] = {}
        self._watchers: dict[bytes, set[asyncio.Queue[lightning_pb2.Payment]]] = {}

    def restore(self, doc: dict[str, Any]) -> None:
        payment = Payment.from_record(doc)
        if not payment.final:  # the node stopped mid-payment; lnd would resolve it: call it failed
            payment.status, payment.failure_reason = Status.FAILED, Reason.FAILURE_REASON_ERROR
        self._payments[payment.payment_hash] = payment

    @property
    def sent_msat(self) -> int:
        return sum(p.value_msat + p.fee_msat for p in self._payments.values() if p.status == Status.SUCCEEDED)

    def get(self, payment_hash: bytes) -> Payment | None:
        return self._payments.get(payment_hash)

    def begin(self, intent: PaymentIntent, now_ns: int) -> Payment:
        """A new IN_FLIGHT payment; raises ``Refused`` (ALREADY_EXISTS) if the hash is paid or being paid."""
        known = self._payments.get(intent.payment_hash)
        if known is not None and known.status == Status.SUCCEEDED:
            raise Refused(grpc.StatusCode.ALREADY_EXISTS, "invoice is already paid")
        if known is not None and not known.final:
            raise Refused(grpc.StatusCode.ALREADY_EXISTS, "payment is in transition")
        payment = Payment(
            payment_hash=intent.payment_hash,
            value_msat=intent.amt_msat,
            payment_request=intent.payment_request,
            creation_time_ns=now_ns,
            payment_index=known.payment_index if known else len(self._payments) + 1,
        )
        self._payments[payment.payment_hash] = payment
        self._changed(payment)
        return payment

    def succeed(self, payment: Payment, preimage: bytes) -> None:
        payment.status, payment.preimage = Status.SUCCEEDED, preimage
        self._changed(payment)

    def fail(self, payment: Payment, reason: int) -> None:
        payment.status, payment.failure_reason = Status.FAILED, reason
        self._changed(payment)

    def watch(self, payment_hash: bytes) -> asyncio.Queue[lightning_pb2.Payment]:
        """A queue that gets the payment's current state now and each change after."""
        queue: asyncio.Queue[lightning_pb2.Payment] = asyncio.Queue()
        self._watchers.setdefault(payment_hash, set()).add(queue)
        payment = self._payments.get(payment_hash)
        if payment is not None:
            queue.put_nowait(payment.to_proto())
        return queue

    def unwatch(self, payment_hash: bytes, queue: asyncio.Queue[lightning_pb2.Payment]) -> None:
        self._watchers.get(payment_hash, set()).discard(queue)

    def _changed(self, payment: Payment) -> None:
        self._journal.append("payment", payment.record())
        snapshot = payment.to_proto()
        for queue in self._watchers.get(payment.payment_hash, ()):
            queue.put_nowait(snapshot)
