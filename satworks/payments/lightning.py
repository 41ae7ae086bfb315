"""A Lightning request's status from its invoice as lnd reports it: pure, stated in docs/algorithms.md.

lnd is the truth: an invoice is OPEN, ACCEPTED (a hold invoice's HTLCs are held), SETTLED or
CANCELED (lnd cancels an open invoice at its expiry). Amounts are millisatoshis as lnd keeps them;
``received_sat`` is the whole satoshis of ``received_msat`` (floor), and the remainder stays visible
in ``received_msat``. Expiry needs a successful read: this runs only on what lnd just said.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from satworks.integrations.lnd.records import MSAT_PER_SAT, InvoiceState, split_msat
from satworks.payments.status import ExceptionStatus, PaymentStatus


@dataclass(frozen=True)
class InvoiceVerdict:
    status: PaymentStatus
    exception_status: ExceptionStatus | None
    received_msat: int
    reason: str | None = None

    @property
    def received_sat(self) -> int:
        return split_msat(self.received_msat)[0]


def sat_to_msat(amount_sat: int) -> int:
    return amount_sat * MSAT_PER_SAT


def decide(
    status: PaymentStatus,
    exception: ExceptionStatus | None,
    *,
    amount_sat: int,
    expires_at: datetime,
    state: InvoiceState,
    amt_paid_msat: int,
    received_msat: int,
    read_at: datetime,
    node_expires_at: datetime | None = None,
    answered_at: datetime | None = None,
) -> InvoiceVerdict:
    """The request's next status, given its current one (with ``received_msat`` so far) and the invoice
    read at ``read_at``. ``node_expires_at`` is the invoice's own expiry on lnd (its creation time plus
    its expiry), which may fall up to a second or so before ``expires_at``: lnd cancels it then.
    ``answered_at``: when lnd's answer came (default ``read_at``). A cancel seen in it happened before
    then, so it is lnd's own at the expiry if that had come by ``answered_at``: a check due at the expiry
    reads the node just before it and often gets the answer just after."""
    amount_msat = sat_to_msat(amount_sat)
    held = amt_paid_msat if state in (InvoiceState.SETTLED, InvoiceState.ACCEPTED) else 0
    # lnd stamps invoices in whole seconds: the second of expires_at is still in time.
    expired = read_at >= expires_at + timedelta(seconds=1)

    def verdict(new: PaymentStatus, new_exception: ExceptionStatus | None, reason: str | None = None) -> InvoiceVerdict:
        return InvoiceVerdict(new, new_exception, held, reason)

    unchanged = InvoiceVerdict(status, exception, received_msat)
    if status == PaymentStatus.CREATING:
        return unchanged
    if status in (PaymentStatus.EXPIRED, PaymentStatus.INVALID):
        # Closed. Money that still arrives (lnd settled an invoice we had read open past expiry) stays visible.
        return verdict(status, ExceptionStatus.PAID_LATE) if state == InvoiceState.SETTLED else unchanged
    if state == InvoiceState.SETTLED:
        return verdict(PaymentStatus.SETTLED, _amount_exception(held, amount_msat))
    if status == PaymentStatus.SETTLED:  # lnd never takes a settlement back: nothing else can be read
        return unchanged
    if state == InvoiceState.ACCEPTED:
        return verdict(PaymentStatus.PROCESSING, _amount_exception(held, amount_msat))
    if state == InvoiceState.CANCELED:
        at_expiry = expired or (node_expires_at is not None and (answered_at or read_at) >= node_expires_at)
        reason = "the invoice expired unpaid" if at_expiry else "the invoice was canceled on the node"
        return verdict(PaymentStatus.EXPIRED, None, reason)
    # OPEN (again, for a held payment whose HTLCs were released)
    if expired:
        return verdict(PaymentStatus.EXPIRED, None, "the invoice expired unpaid")
    return verdict(PaymentStatus.NEW, None)


def _amount_exception(paid_msat: int, amount_msat: int) -> ExceptionStatus | None:
    """lnd lets a payer pay more than asked, never less (it refuses the HTLCs)."""
    if paid_msat > amount_msat:
        return ExceptionStatus.PAID_OVER
    if paid_msat < amount_msat:
        return ExceptionStatus.PAID_PARTIAL
    return None
