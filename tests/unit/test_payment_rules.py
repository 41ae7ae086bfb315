"""The payment status rules, from what the node reports to the request's status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from satworks.payments.amounts import btc_to_sat, sat_to_btc
from satworks.payments.evaluate import Policy, Receipt, evaluate
from satworks.payments.status import ExceptionStatus as X
from satworks.payments.status import IllegalTransition, check_transition
from satworks.payments.status import PaymentStatus as S

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EXPIRES = T0 + timedelta(hours=1)


def policy(amount: int = 10_000, confs: int = 1, tolerance: str = "0", monitoring_s: int = 3600) -> Policy:
    return Policy(amount, confs, Decimal(tolerance), EXPIRES, monitoring_s)


def paid(
    amount: int,
    confs: int = 1,
    *,
    at: datetime = T0,
    rbf: bool = False,
    mempool: bool = True,
    txid: str = "a",
) -> Receipt:
    return Receipt(txid, 0, amount, confs, mempool, rbf, at)


def test_exact_confirmed_payment_settles() -> None:
    v = evaluate(S.NEW, None, policy(), [paid(10_000, 1)], T0)
    assert (v.status, v.exception_status, v.received_sat, v.confirmations) == (S.SETTLED, None, 10_000, 1)


def test_paid_in_the_mempool_is_processing_until_confirmed_enough() -> None:
    assert evaluate(S.NEW, None, policy(confs=2), [paid(10_000, 0)], T0).status == S.PROCESSING
    assert evaluate(S.PROCESSING, None, policy(confs=2), [paid(10_000, 1)], T0).status == S.PROCESSING
    assert evaluate(S.PROCESSING, None, policy(confs=2), [paid(10_000, 2)], T0).status == S.SETTLED


def test_underpayment_is_partial_and_a_top_up_completes_it() -> None:
    v = evaluate(S.NEW, None, policy(), [paid(4_000, 1)], T0)
    assert (v.status, v.exception_status) == (S.NEW, X.PAID_PARTIAL)
    v = evaluate(S.NEW, X.PAID_PARTIAL, policy(), [paid(4_000, 2), paid(6_000, 1, txid="b")], T0)
    assert (v.status, v.exception_status, v.received_sat) == (S.SETTLED, None, 10_000)


def test_overpayment_is_flagged() -> None:
    v = evaluate(S.NEW, None, policy(), [paid(12_000, 1)], T0)
    assert (v.status, v.exception_status) == (S.SETTLED, X.PAID_OVER)


def test_tolerance_accepts_slightly_less_rounding_up_to_whole_satoshis() -> None:
    assert policy(amount=10_001, tolerance="1").due_sat == 9_901  # 9900.99 rounds up
    assert evaluate(S.NEW, None, policy(amount=10_001, tolerance="1"), [paid(9_901)], T0).status == S.SETTLED
    assert evaluate(S.NEW, None, policy(amount=10_001, tolerance="1"), [paid(9_900)], T0).status == S.NEW


def test_zero_conf_counts_from_the_mempool_whether_or_not_it_signals_rbf() -> None:
    assert evaluate(S.NEW, None, policy(confs=0), [paid(10_000, 0)], T0).status == S.SETTLED
    assert evaluate(S.NEW, None, policy(confs=0), [paid(10_000, 0, rbf=True)], T0).status == S.SETTLED
    dropped = paid(10_000, 0, mempool=False)
    assert evaluate(S.NEW, None, policy(confs=0), [dropped], T0).status == S.NEW


def test_a_settled_zero_conf_payment_replaced_by_one_paying_the_same_stays_settled() -> None:
    replaced, replacement = paid(10_000, 0, mempool=False, rbf=True), paid(10_000, 0, txid="b", rbf=True)
    v = evaluate(S.SETTLED, None, policy(confs=0), [replaced, replacement], T0)
    assert (v.status, v.exception_status, v.received_sat) == (S.SETTLED, None, 10_000)
    gone = evaluate(S.SETTLED, None, policy(confs=0), [paid(10_000, -1, mempool=False)], T0)
    assert gone.status == S.INVALID


def test_a_conflicted_receipt_never_counts_beside_its_mined_replacement() -> None:
    conflicted, mined = paid(10_000, -1, mempool=False), paid(10_000, 1, txid="b")
    v = evaluate(S.PROCESSING, None, policy(), [conflicted, mined], T0)
    assert (v.status, v.exception_status, v.received_sat) == (S.SETTLED, None, 10_000)


def test_expiry_only_after_the_second_of_expires_at_and_keeps_partial_visible() -> None:
    assert evaluate(S.NEW, None, policy(), [], EXPIRES).status == S.NEW
    assert evaluate(S.NEW, None, policy(), [], EXPIRES + timedelta(milliseconds=999)).status == S.NEW
    in_the_last_second = paid(10_000, 1, at=EXPIRES)
    assert evaluate(S.NEW, None, policy(), [in_the_last_second], EXPIRES + timedelta(seconds=5)).status == S.SETTLED
    v = evaluate(S.NEW, None, policy(), [paid(3_000)], EXPIRES + timedelta(seconds=1))
    assert (v.status, v.exception_status, v.received_sat) == (S.EXPIRED, X.PAID_PARTIAL, 3_000)


def test_money_after_expiry_is_paid_late_and_stays_visible() -> None:
    late = paid(10_000, 0, at=EXPIRES + timedelta(minutes=5))
    v = evaluate(S.EXPIRED, None, policy(), [late], EXPIRES + timedelta(minutes=6))
    assert (v.status, v.exception_status, v.received_sat) == (S.EXPIRED, X.PAID_LATE, 10_000)
    v = evaluate(S.NEW, None, policy(), [late], EXPIRES + timedelta(minutes=6))
    assert (v.status, v.exception_status) == (S.EXPIRED, X.PAID_LATE)


def test_paid_in_time_but_confirmed_after_expiry_still_settles() -> None:
    v = evaluate(S.PROCESSING, None, policy(), [paid(10_000, 1, at=T0)], EXPIRES + timedelta(minutes=30))
    assert v.status == S.SETTLED


def test_double_spent_payment_before_expiry_goes_back_to_new() -> None:
    v = evaluate(S.PROCESSING, None, policy(), [paid(10_000, -1)], T0)
    assert (v.status, v.received_sat) == (S.NEW, 0)


def test_payment_vanishing_after_expiry_or_after_settlement_is_invalid() -> None:
    after = EXPIRES + timedelta(minutes=1)
    assert evaluate(S.PROCESSING, None, policy(), [paid(10_000, -2)], after).status == S.INVALID
    dropped = paid(10_000, 0, mempool=False)
    v = evaluate(S.SETTLED, None, policy(), [dropped], T0)
    assert (v.status, v.received_sat) == (S.INVALID, 0)
    assert v.reason is not None


def test_settled_stays_settled_while_its_tx_is_back_in_the_mempool() -> None:
    assert evaluate(S.SETTLED, None, policy(), [paid(10_000, 0)], T0).status == S.SETTLED


def test_unconfirmed_by_the_end_of_the_monitoring_window_is_invalid() -> None:
    end = EXPIRES + timedelta(seconds=3601)
    assert evaluate(S.PROCESSING, None, policy(confs=6), [paid(10_000, 3)], end).status == S.INVALID


def test_illegal_moves_are_refused() -> None:
    with pytest.raises(IllegalTransition):
        check_transition(S.EXPIRED, S.SETTLED)
    with pytest.raises(IllegalTransition):
        check_transition(S.SETTLED, S.NEW)
    check_transition(S.PROCESSING, S.NEW)


@pytest.mark.parametrize(
    ("btc", "sat"),
    [("0.00000001", 1), ("0.00012345", 12_345), ("21000000", 2_100_000_000_000_000), ("1.1", 110_000_000)],
)
def test_btc_converts_to_satoshis_exactly(btc: str, sat: int) -> None:
    assert btc_to_sat(Decimal(btc)) == sat
    assert sat_to_btc(sat) == Decimal(btc)


def test_fractions_of_a_satoshi_and_floats_are_refused() -> None:
    with pytest.raises(ValueError, match="whole number"):
        btc_to_sat(Decimal("0.000000001"))
    with pytest.raises(ValueError, match="float"):
        btc_to_sat(0.1)  # type: ignore[arg-type]
