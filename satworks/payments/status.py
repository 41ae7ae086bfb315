"""Payment request states (BTCPay's invoice model) and app event names."""

from __future__ import annotations

from enum import StrEnum


class PaymentStatus(StrEnum):
    CREATING = "creating"  # waiting for the node to hand out an address
    NEW = "new"  # nothing, or not enough, received yet
    PROCESSING = "processing"  # paid enough in time, not yet confirmed enough
    SETTLED = "settled"
    EXPIRED = "expired"  # not enough received by expires_at
    INVALID = "invalid"  # money that had counted was double-spent or reorganised away

    @property
    def is_open(self) -> bool:
        return self in OPEN


class TxState(StrEnum):
    """What the node says of one transaction paying a request, as stored in ``payment_txs``."""

    MEMPOOL = "mempool"  # unconfirmed, in the node's mempool
    CONFIRMED = "confirmed"  # in the best chain
    CONFLICTED = "conflicted"  # a conflicting transaction was mined (negative confirmations)
    REMOVED = "removed"  # neither mined nor in the mempool: dropped, replaced or reorganised away


class ExceptionStatus(StrEnum):
    PAID_PARTIAL = "paid_partial"
    PAID_OVER = "paid_over"
    PAID_LATE = "paid_late"


# Moves a check may make. CREATING -> NEW belongs to the address job alone.
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.CREATING: frozenset({PaymentStatus.NEW}),
    PaymentStatus.NEW: frozenset({PaymentStatus.PROCESSING, PaymentStatus.SETTLED, PaymentStatus.EXPIRED}),
    PaymentStatus.PROCESSING: frozenset(
        {PaymentStatus.NEW, PaymentStatus.SETTLED, PaymentStatus.INVALID, PaymentStatus.EXPIRED}
    ),
    PaymentStatus.SETTLED: frozenset({PaymentStatus.INVALID}),
    PaymentStatus.EXPIRED: frozenset(),
    PaymentStatus.INVALID: frozenset(),
}

OPEN = frozenset({PaymentStatus.CREATING, PaymentStatus.NEW, PaymentStatus.PROCESSING})
CLOSED = frozenset({PaymentStatus.SETTLED, PaymentStatus.EXPIRED, PaymentStatus.INVALID})

EVENT_FOR_STATUS = {
    PaymentStatus.PROCESSING: "payment.processing",
    PaymentStatus.SETTLED: "payment.settled",
    PaymentStatus.EXPIRED: "payment.expired",
    PaymentStatus.INVALID: "payment.invalid",
}
PAID_LATE_EVENT = "payment.paid_late"


class IllegalTransition(ValueError):
    pass


def check_transition(current: PaymentStatus, target: PaymentStatus) -> None:
    if target != current and target not in TRANSITIONS[current]:
        raise IllegalTransition(f"{current} -> {target}")
