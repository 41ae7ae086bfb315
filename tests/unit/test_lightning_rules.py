"""A Lightning request's status from lnd's invoice state (``payments.lightning.decide``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from satworks.integrations.lnd.records import InvoiceState
from satworks.payments.lightning import decide
from satworks.payments.status import ExceptionStatus, PaymentStatus

EXPIRES = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
BEFORE = EXPIRES - timedelta(minutes=5)


def read(
    state: InvoiceState,
    *,
    status: PaymentStatus = PaymentStatus.NEW,
    exception: ExceptionStatus | None = None,
    paid_msat: int = 0,
    at: datetime = BEFORE,
    node_expires_at: datetime | None = EXPIRES,
    amount_sat: int = 1_000,
    answered: datetime | None = None,
) -> tuple[PaymentStatus, ExceptionStatus | None, int, int, str | None]:
    verdict = decide(
        status,
        exception,
        amount_sat=amount_sat,
        expires_at=EXPIRES,
        state=state,
        amt_paid_msat=paid_msat,
        received_msat=0,
        read_at=at,
        node_expires_at=node_expires_at,
        answered_at=answered,
    )
    return verdict.status, verdict.exception_status, verdict.received_sat, verdict.received_msat, verdict.reason


def test_an_open_invoice_is_new_until_a_second_after_expiry_then_expired() -> None:
    assert read(InvoiceState.OPEN)[:2] == (PaymentStatus.NEW, None)
    assert read(InvoiceState.OPEN, at=EXPIRES + timedelta(milliseconds=999))[0] == PaymentStatus.NEW
    assert read(InvoiceState.OPEN, at=EXPIRES + timedelta(seconds=1)) == (
        PaymentStatus.EXPIRED,
        None,
        0,
        0,
        "the invoice expired unpaid",
    )


def test_settled_for_the_amount_is_settled_with_exact_millisatoshis() -> None:
    assert read(InvoiceState.SETTLED, paid_msat=1_000_000) == (PaymentStatus.SETTLED, None, 1_000, 1_000_000, None)


@pytest.mark.parametrize(("paid_msat", "sat"), [(1_000_001, 1_000), (1_000_999, 1_000), (1_001_000, 1_001)])
def test_paying_more_is_paid_over_and_whole_satoshis_are_never_rounded_up(paid_msat: int, sat: int) -> None:
    status, exception, received_sat, received_msat, _ = read(InvoiceState.SETTLED, paid_msat=paid_msat)
    assert (status, exception, received_sat, received_msat) == (
        PaymentStatus.SETTLED,
        ExceptionStatus.PAID_OVER,
        sat,
        paid_msat,
    )


def test_a_held_payment_is_processing_and_released_htlcs_make_it_new_again() -> None:
    assert read(InvoiceState.ACCEPTED, paid_msat=1_000_000)[:4] == (PaymentStatus.PROCESSING, None, 1_000, 1_000_000)
    assert read(InvoiceState.OPEN, status=PaymentStatus.PROCESSING)[:4] == (PaymentStatus.NEW, None, 0, 0)


def test_a_cancel_at_lnds_own_expiry_is_an_expiry_and_an_earlier_one_is_said_so() -> None:
    # lnd's expiry counts from its creation time in whole seconds: it may come just before ours.
    at_node_expiry = read(InvoiceState.CANCELED, at=EXPIRES - timedelta(milliseconds=400), node_expires_at=BEFORE)
    assert at_node_expiry[0::4] == (PaymentStatus.EXPIRED, "the invoice expired unpaid")
    canceled = read(InvoiceState.CANCELED, at=BEFORE - timedelta(minutes=1))
    assert canceled[0::4] == (PaymentStatus.EXPIRED, "the invoice was canceled on the node")


def test_a_cancel_seen_in_an_answer_that_came_after_the_expiry_is_the_expiry() -> None:
    # The check due at the expiry asked just before it; lnd canceled the invoice before answering.
    asked = BEFORE - timedelta(milliseconds=30)
    late_answer = read(
        InvoiceState.CANCELED, at=asked, node_expires_at=BEFORE, answered=BEFORE + timedelta(milliseconds=5)
    )
    assert late_answer[0::4] == (PaymentStatus.EXPIRED, "the invoice expired unpaid")
    early_answer = read(
        InvoiceState.CANCELED, at=asked, node_expires_at=BEFORE, answered=asked + timedelta(milliseconds=5)
    )
    assert early_answer[0::4] == (PaymentStatus.EXPIRED, "the invoice was canceled on the node")


def test_a_settlement_after_we_expired_the_request_stays_visible_as_paid_late() -> None:
    late = read(InvoiceState.SETTLED, status=PaymentStatus.EXPIRED, paid_msat=1_000_000, at=EXPIRES + timedelta(1))
    assert late[:4] == (PaymentStatus.EXPIRED, ExceptionStatus.PAID_LATE, 1_000, 1_000_000)


def test_settled_is_final_and_creating_waits_for_the_invoice() -> None:
    settled = read(InvoiceState.CANCELED, status=PaymentStatus.SETTLED, at=EXPIRES + timedelta(hours=1))
    assert settled[:2] == (PaymentStatus.SETTLED, None)
    assert read(InvoiceState.OPEN, status=PaymentStatus.CREATING, at=EXPIRES + timedelta(hours=1))[0] == (
        PaymentStatus.CREATING
    )
