"""lnd's protobuf messages read into the records of ``records``, refusing states we do not know."""

from __future__ import annotations

from datetime import UTC, datetime

from satworks.integrations.lnd.errors import LndError
from satworks.integrations.lnd.protos import lightning_pb2
from satworks.integrations.lnd.records import FailureReason, InvoiceState, LndInvoice, LndPayment, PaymentStatus


def _when(unix_s: int) -> datetime:
    return datetime.fromtimestamp(unix_s, UTC)


def invoice_from_proto(message: lightning_pb2.Invoice) -> LndInvoice:
    try:
        state = InvoiceState(lightning_pb2.Invoice.InvoiceState.Name(message.state))
    except ValueError:
        raise LndError(f"lnd sent an unknown invoice state {message.state}") from None
    return LndInvoice(
        payment_hash=message.r_hash.hex(),
        payment_request=message.payment_request,
        memo=message.memo,
        state=state,
        value_msat=message.value_msat,
        amt_paid_msat=message.amt_paid_msat,
        add_index=message.add_index,
        settle_index=message.settle_index,
        created_at=_when(message.creation_date),
        expiry_s=message.expiry,
        settled_at=_when(message.settle_date) if message.settle_date else None,
        is_keysend=message.is_keysend,
    )


def payment_from_proto(message: lightning_pb2.Payment) -> LndPayment:
    try:
        status = PaymentStatus(lightning_pb2.Payment.PaymentStatus.Name(message.status))
        reason = FailureReason(
            lightning_pb2.PaymentFailureReason.Name(message.failure_reason).removeprefix("FAILURE_REASON_")
        )
    except ValueError:
        raise LndError(f"lnd sent an unknown payment status {message.status}/{message.failure_reason}") from None
    return LndPayment(
        payment_hash=message.payment_hash,
        status=status,
        failure_reason=reason,
        value_msat=message.value_msat,
        fee_msat=message.fee_msat,
        preimage=message.payment_preimage,
        payment_request=message.payment_request,
        payment_index=message.payment_index,
        created_at=datetime.fromtimestamp(message.creation_time_ns / 1e9, UTC),
    )
