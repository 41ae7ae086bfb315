"""What the lnd client returns: small frozen records built from lnd's messages (by ``messages``).

No protobuf or gRPC here: the worker imports these records at start-up without paying for either.

Amounts are integer millisatoshis as lnd keeps them. Whole satoshis are derived by
``split_msat`` (floor and remainder), never rounded: an amount that is not a whole number of
satoshis stays visible in its ``*_sub_sat_msat`` remainder. lnd's own ``*_sat`` fields are
ignored because they are silently truncated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MSAT_PER_SAT = 1000


def split_msat(msat: int) -> tuple[int, int]:
    """``1_234_567`` → ``(1234, 567)``: whole satoshis and the millisatoshis left over."""
    if msat < 0:
        raise ValueError(f"negative amount: {msat} msat")
    return divmod(msat, MSAT_PER_SAT)


class InvoiceState(StrEnum):
    #: created and payable
    OPEN = "OPEN"
    #: paid; ``amt_paid_msat`` is what arrived (it may exceed the value)
    SETTLED = "SETTLED"
    #: canceled, or expired unpaid (lnd cancels an open invoice at its expiry)
    CANCELED = "CANCELED"
    #: a hold invoice whose HTLCs are held, not yet settled
    ACCEPTED = "ACCEPTED"


class PaymentStatus(StrEnum):
    #: created, no HTLC sent yet
    INITIATED = "INITIATED"
    #: HTLCs in flight
    IN_FLIGHT = "IN_FLIGHT"
    SUCCEEDED = "SUCCEEDED"
    #: final; ``failure_reason`` says why
    FAILED = "FAILED"

    @property
    def final(self) -> bool:
        return self in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED)


class FailureReason(StrEnum):
    """lnd's ``PaymentFailureReason`` without its ``FAILURE_REASON_`` prefix."""

    NONE = "NONE"
    TIMEOUT = "TIMEOUT"
    NO_ROUTE = "NO_ROUTE"
    ERROR = "ERROR"
    INCORRECT_PAYMENT_DETAILS = "INCORRECT_PAYMENT_DETAILS"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    CANCELED = "CANCELED"


@dataclass(frozen=True)
class NodeInfo:
    identity_pubkey: str
    alias: str
    version: str
    network: str | None  # "regtest", "testnet", "mainnet", ...; None if lnd did not say
    block_height: int
    synced_to_chain: bool
    num_active_channels: int
    num_peers: int


@dataclass(frozen=True)
class CreatedInvoice:
    """lnd's answer to AddInvoice."""

    payment_hash: str  # hex
    payment_request: str  # BOLT11
    add_index: int
    payment_addr: str  # hex (the BOLT11 payment secret)


@dataclass(frozen=True)
class LndInvoice:
    payment_hash: str  # hex
    payment_request: str
    memo: str
    state: InvoiceState
    value_msat: int  # 0: the payer chooses the amount
    amt_paid_msat: int  # set once SETTLED or ACCEPTED
    add_index: int
    settle_index: int  # 0 until settled
    created_at: datetime
    expiry_s: int
    settled_at: datetime | None
    is_keysend: bool

    @property
    def expires_at(self) -> datetime:
        return self.created_at + timedelta(seconds=self.expiry_s)

    @property
    def value_sat(self) -> int:
        """Whole satoshis of the value; see ``value_sub_sat_msat``."""
        return split_msat(self.value_msat)[0]

    @property
    def value_sub_sat_msat(self) -> int:
        return split_msat(self.value_msat)[1]

    @property
    def amt_paid_sat(self) -> int:
        """Whole satoshis received (floor); a fraction of a satoshi is in ``amt_paid_sub_sat_msat``."""
        return split_msat(self.amt_paid_msat)[0]

    @property
    def amt_paid_sub_sat_msat(self) -> int:
        return split_msat(self.amt_paid_msat)[1]


@dataclass(frozen=True)
class InvoicePage:
    """A ListInvoices answer: invoices in ascending ``add_index``; offsets for the next page."""

    invoices: tuple[LndInvoice, ...]
    first_index_offset: int
    last_index_offset: int


@dataclass(frozen=True)
class LndPayment:
    """One update of an outgoing payment (SendPaymentV2 / TrackPaymentV2)."""

    payment_hash: str  # hex
    status: PaymentStatus
    failure_reason: FailureReason
    value_msat: int
    fee_msat: int
    preimage: str  # hex; all zeros until SUCCEEDED
    payment_request: str
    payment_index: int
    created_at: datetime
