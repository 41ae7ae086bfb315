"""Decide a payment request's status from what the node says was received.

Pure: the inputs are the request's policy, the receipts read from the node and the time of that
successful read. The rules follow BTCPay Server's invoice watcher, stated exactly in
docs/algorithms.md#payment-status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from satworks.payments.status import ExceptionStatus, PaymentStatus, TxState


@dataclass(frozen=True)
class Policy:
    amount_sat: int
    required_confirmations: int
    tolerance_pct: Decimal
    expires_at: datetime
    monitoring_s: int

    @property
    def due_sat(self) -> int:
        """What must arrive: ``amount * (1 - tolerance/100)``, rounded up to a whole satoshi."""
        due = Decimal(self.amount_sat) * (100 - self.tolerance_pct) / 100
        return int(due.to_integral_value(rounding=ROUND_CEILING))

    @property
    def monitoring_ends_at(self) -> datetime:
        return self.expires_at + timedelta(seconds=self.monitoring_s)


@dataclass(frozen=True)
class Receipt:
    """One output paying the request's address, as the node reports it now."""

    txid: str
    vout: int
    amount_sat: int
    confirmations: int  # negative: conflicted (double-spent) that many blocks ago
    in_mempool: bool  # meaningful when confirmations == 0
    replaceable: bool  # signals BIP125; kept for the record, no rule depends on it (full-RBF relay)
    received_at: datetime
    block_hash: str | None = None
    block_height: int | None = None

    @property
    def alive(self) -> bool:
        return self.confirmations > 0 or (self.confirmations == 0 and self.in_mempool)

    def confirmed_enough(self, required: int) -> bool:
        # Whether or not it signals BIP125: since Core 28 nodes relay full-RBF replacements, so the
        # signal no longer tells a safe 0-conf payment from an unsafe one (docs/algorithms.md).
        return self.alive and self.confirmations >= required

    @property
    def state(self) -> TxState:
        if self.confirmations > 0:
            return TxState.CONFIRMED
        if self.confirmations < 0:
            return TxState.CONFLICTED
        return TxState.MEMPOOL if self.in_mempool else TxState.REMOVED


@dataclass(frozen=True)
class Verdict:
    status: PaymentStatus
    exception_status: ExceptionStatus | None
    received_sat: int
    confirmations: int
    reason: str | None = None


def evaluate(
    status: PaymentStatus,
    exception: ExceptionStatus | None,
    policy: Policy,
    receipts: list[Receipt],
    read_at: datetime,
) -> Verdict:
    alive = [r for r in receipts if r.alive]
    in_time = [r for r in alive if r.received_at <= policy.expires_at]
    received = sum(r.amount_sat for r in alive)
    paid_in_time = sum(r.amount_sat for r in in_time)
    confirmed_in_time = sum(r.amount_sat for r in in_time if r.confirmed_enough(policy.required_confirmations))
    paid_late = any(r.received_at > policy.expires_at for r in alive)
    confirmations = min((r.confirmations for r in in_time), default=0)
    enough = paid_in_time >= policy.due_sat
    # The node stamps receipts in whole seconds: a payment in the second of expires_at is in time,
    # so expiry is decided only once that second is over.
    expired = read_at >= policy.expires_at + timedelta(seconds=1)

    def verdict(new_status: PaymentStatus, new_exception: ExceptionStatus | None, reason: str | None = None) -> Verdict:
        return Verdict(new_status, new_exception, received, confirmations, reason)

    if status == PaymentStatus.INVALID:
        return verdict(status, ExceptionStatus.PAID_LATE if paid_late else exception)
    if status == PaymentStatus.EXPIRED:
        return verdict(status, ExceptionStatus.PAID_LATE if paid_late else exception)
    if status == PaymentStatus.SETTLED:
        # Settled stays settled while its money exists (even back in the mempool after a reorg).
        if enough:
            return verdict(status, _over(received, policy))
        return verdict(PaymentStatus.INVALID, exception, "the settling payment was reorganised away or double-spent")
    if status == PaymentStatus.CREATING:
        return verdict(status, exception)

    # NEW or PROCESSING
    if enough:
        if confirmed_in_time >= policy.due_sat:
            return verdict(PaymentStatus.SETTLED, _over(paid_in_time, policy))
        if read_at >= policy.monitoring_ends_at + timedelta(seconds=1):
            reason = "not confirmed within the monitoring window"
            return verdict(PaymentStatus.INVALID, _over(paid_in_time, policy), reason)
        return verdict(PaymentStatus.PROCESSING, _over(paid_in_time, policy))
    if status == PaymentStatus.PROCESSING and expired:
        return verdict(PaymentStatus.INVALID, _partial(paid_in_time), "a counted payment vanished after expiry")
    if expired:
        return verdict(PaymentStatus.EXPIRED, ExceptionStatus.PAID_LATE if paid_late else _partial(paid_in_time))
    return verdict(PaymentStatus.NEW, _partial(paid_in_time))


def _over(paid: int, policy: Policy) -> ExceptionStatus | None:
    return ExceptionStatus.PAID_OVER if paid > policy.amount_sat else None


def _partial(paid: int) -> ExceptionStatus | None:
    return ExceptionStatus.PAID_PARTIAL if paid > 0 else None
