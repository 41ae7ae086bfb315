"""The lnd client against simulated nodes, through the real gRPC surface (TLS, macaroons, streams)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from satworks import clock
from satworks.errors import NodeUnavailable, PermanentError, TransientError
from satworks.integrations.lnd.client import LndClient
from satworks.integrations.lnd.errors import LndAlreadyExists, LndAuthFailed, LndConfigError, LndError, LndNotFound
from satworks.integrations.lnd.records import FailureReason, InvoiceState, LndInvoice, PaymentStatus
from satworks.integrations.lnd.stream import Stream
from tests.integration.lnd_fixtures import LndNetwork, lnd_network, running_lnd
from tests.support import wait_until

__all__ = ["lnd_network"]  # the fixture, imported for pytest


@pytest.fixture
def merchant(lnd_network: LndNetwork) -> LndClient:
    return lnd_network.client("merchant")


@pytest.fixture
def payer(lnd_network: LndNetwork) -> LndClient:
    return lnd_network.client("payer")


def take(stream: Stream[LndInvoice], count: int) -> list[LndInvoice]:
    return [next(stream) for _ in range(count)]


def summary(invoices: list[LndInvoice]) -> list[tuple[str, InvoiceState, int, int]]:
    return [(i.memo, i.state, i.add_index, i.settle_index) for i in invoices]


# ---- the merchant's calls


def test_get_info_names_the_node_and_its_network(lnd_network: LndNetwork, merchant: LndClient) -> None:
    info = merchant.get_info()
    assert info.alias == "merchant"
    assert info.identity_pubkey == lnd_network.node("merchant").pubkey.hex()
    assert info.network == "regtest"
    assert info.synced_to_chain and info.num_active_channels == 2


def test_created_invoice_is_open_with_exact_amount_memo_and_expiry(merchant: LndClient) -> None:
    before = clock.utcnow().replace(microsecond=0)
    first = merchant.add_invoice(2_500, memo="raffle ticket #7", expiry_s=900)
    second = merchant.add_invoice(1, memo="second")
    assert (first.add_index, second.add_index) == (1, 2)
    assert first.payment_request.startswith("lnbcrt25u1")

    invoice = merchant.lookup_invoice(first.payment_hash)
    assert invoice.state is InvoiceState.OPEN
    assert (invoice.value_msat, invoice.value_sat, invoice.value_sub_sat_msat) == (2_500_000, 2_500, 0)
    assert (invoice.amt_paid_msat, invoice.settle_index, invoice.settled_at) == (0, 0, None)
    assert invoice.memo == "raffle ticket #7" and invoice.payment_request == first.payment_request
    assert invoice.expiry_s == 900 and invoice.created_at >= before
    assert invoice.expires_at == invoice.created_at + timedelta(seconds=900)
    assert merchant.lookup_invoice(second.payment_hash).expiry_s == 86_400  # lnd's default


def test_millisatoshi_values_are_kept_exactly_and_the_sub_satoshi_part_is_visible(merchant: LndClient) -> None:
    created = merchant.add_invoice(value_msat=1_234_567, memo="msat")
    invoice = merchant.lookup_invoice(created.payment_hash)
    assert invoice.value_msat == 1_234_567
    assert (invoice.value_sat, invoice.value_sub_sat_msat) == (1_234, 567)
    assert created.payment_request.startswith("lnbcrt12345670p1")


def test_lookup_of_an_unknown_hash_is_not_found(merchant: LndClient) -> None:
    with pytest.raises(LndNotFound) as info:
        merchant.lookup_invoice("00" * 32)
    assert info.value.grpc_code == "NOT_FOUND" and "unable to locate invoice" in info.value.message


def test_an_invoice_with_a_known_preimage_is_created_once(merchant: LndClient) -> None:
    preimage = bytes(range(32))
    created = merchant.add_invoice(10, preimage=preimage)
    assert created.payment_hash == hashlib.sha256(preimage).hexdigest()
    with pytest.raises(LndAlreadyExists):
        merchant.add_invoice(10, preimage=preimage)


def test_invalid_invoice_values_are_refused_permanently(merchant: LndClient) -> None:
    with pytest.raises(LndError, match="amount cannot be negative") as info:
        merchant.add_invoice(-5)
    assert info.value.grpc_code == "UNKNOWN" and not isinstance(info.value, TransientError)
    with pytest.raises(LndError, match="greater than max expiry"):
        merchant.add_invoice(5, expiry_s=400 * 86_400)


def test_list_invoices_pages_forward_and_backward_by_add_index(merchant: LndClient, payer: LndClient) -> None:
    created = [merchant.add_invoice(100 + n, memo=f"n{n}") for n in range(1, 6)]
    payer.pay(created[1].payment_request)

    page = merchant.list_invoices(0, 2)
    assert [i.memo for i in page.invoices] == ["n1", "n2"]
    assert (page.first_index_offset, page.last_index_offset) == (1, 2)
    page = merchant.list_invoices(page.last_index_offset, 2)
    assert [i.add_index for i in page.invoices] == [3, 4]
    assert [i.memo for i in merchant.list_invoices(0, 100, pending_only=True).invoices] == ["n1", "n3", "n4", "n5"]
    assert [i.memo for i in merchant.list_invoices(0, 2, reverse=True).invoices] == ["n4", "n5"]
    assert [i.memo for i in merchant.list_invoices(4, 2, reverse=True).invoices] == ["n2", "n3"]
    assert merchant.list_invoices(5, 10).invoices == ()


# ---- paying from another node


def test_payer_pays_and_the_merchant_sees_the_invoice_settled(merchant: LndClient, payer: LndClient) -> None:
    created = merchant.add_invoice(21_000, memo="coffee")
    with payer.send_payment_v2(created.payment_request, fee_limit_msat=1_000) as stream:
        updates = list(stream)
    assert [u.status for u in updates] == [PaymentStatus.IN_FLIGHT, PaymentStatus.SUCCEEDED]
    final = updates[-1]
    assert final.failure_reason is FailureReason.NONE and final.value_msat == 21_000_000 and final.fee_msat == 0
    assert hashlib.sha256(bytes.fromhex(final.preimage)).hexdigest() == created.payment_hash == final.payment_hash

    invoice = merchant.lookup_invoice(created.payment_hash)
    assert invoice.state is InvoiceState.SETTLED
    assert (invoice.amt_paid_msat, invoice.amt_paid_sat, invoice.amt_paid_sub_sat_msat) == (21_000_000, 21_000, 0)
    assert invoice.settle_index == 1 and invoice.settled_at is not None

    tracked = list(payer.track_payment_v2(created.payment_hash))
    assert [u.status for u in tracked] == [PaymentStatus.SUCCEEDED]


def test_paying_twice_from_the_same_node_is_refused_as_already_paid(merchant: LndClient, payer: LndClient) -> None:
    created = merchant.add_invoice(500)
    assert payer.pay(created.payment_request).status is PaymentStatus.SUCCEEDED
    with pytest.raises(LndAlreadyExists, match="invoice is already paid") as info:
        payer.pay(created.payment_request)
    assert info.value.grpc_code == "ALREADY_EXISTS" and isinstance(info.value, PermanentError)
    assert merchant.lookup_invoice(created.payment_hash).amt_paid_msat == 500_000


def test_paying_an_invoice_another_node_paid_fails_with_incorrect_payment_details(
    lnd_network: LndNetwork, merchant: LndClient, payer: LndClient
) -> None:
    created = merchant.add_invoice(700)
    assert payer.pay(created.payment_request).status is PaymentStatus.SUCCEEDED
    second = lnd_network.client("payer2").pay(created.payment_request)
    assert second.status is PaymentStatus.FAILED
    assert second.failure_reason is FailureReason.INCORRECT_PAYMENT_DETAILS
    assert merchant.lookup_invoice(created.payment_hash).amt_paid_msat == 700_000


def test_an_expired_invoice_is_canceled_and_refused_by_the_payer(
    monkeypatch: pytest.MonkeyPatch, lnd_network: LndNetwork, merchant: LndClient, payer: LndClient
) -> None:
    created = merchant.add_invoice(1_000, expiry_s=60)
    later = clock.utcnow() + timedelta(seconds=61)
    monkeypatch.setattr(clock, "utcnow", lambda: later)

    assert merchant.lookup_invoice(created.payment_hash).state is InvoiceState.CANCELED
    with pytest.raises(LndError, match=r"invoice expired\. Valid until") as info:
        payer.pay(created.payment_request)
    assert info.value.grpc_code == "UNKNOWN"
    # Sent without the request (dest + hash + payment address), it reaches the merchant, which refuses it.
    merchant_key = lnd_network.node("merchant").pubkey
    with payer.send_payment_v2(
        dest=merchant_key, amt_msat=1_000_000, payment_hash=created.payment_hash, payment_addr=created.payment_addr
    ) as stream:
        final = list(stream)[-1]
    assert (final.status, final.failure_reason) == (PaymentStatus.FAILED, FailureReason.INCORRECT_PAYMENT_DETAILS)
    assert merchant.list_invoices(0, 10, pending_only=True).invoices == ()


def test_the_payer_chooses_the_amount_of_a_zero_amount_invoice(merchant: LndClient, payer: LndClient) -> None:
    created = merchant.add_invoice(memo="tip jar")
    assert created.payment_request.startswith("lnbcrt1")  # no amount in the human-readable part
    with pytest.raises(LndError, match="amount must be specified when paying a zero amount invoice"):
        payer.pay(created.payment_request)
    assert payer.pay(created.payment_request, amt_msat=1_500_250).status is PaymentStatus.SUCCEEDED
    invoice = merchant.lookup_invoice(created.payment_hash)
    assert (invoice.value_msat, invoice.amt_paid_msat) == (0, 1_500_250)
    assert (invoice.amt_paid_sat, invoice.amt_paid_sub_sat_msat) == (1_500, 250)


def test_an_overpaid_invoice_settles_with_what_arrived(
    lnd_network: LndNetwork, merchant: LndClient, payer: LndClient
) -> None:
    created = merchant.add_invoice(1_000)
    with pytest.raises(LndError, match="amount must not be specified when paying a non-zero amount invoice"):
        payer.pay(created.payment_request, amt_msat=1_500_000)
    with payer.send_payment_v2(
        dest=lnd_network.node("merchant").pubkey,
        amt_msat=1_500_000,
        payment_hash=created.payment_hash,
        payment_addr=created.payment_addr,
    ) as stream:
        assert list(stream)[-1].status is PaymentStatus.SUCCEEDED
    invoice = merchant.lookup_invoice(created.payment_hash)
    assert invoice.state is InvoiceState.SETTLED
    assert (invoice.value_msat, invoice.amt_paid_msat, invoice.amt_paid_sat) == (1_000_000, 1_500_000, 1_500)


def test_an_underpayment_or_a_wrong_payment_address_is_refused_by_the_merchant(
    lnd_network: LndNetwork, merchant: LndClient, payer: LndClient
) -> None:
    created = merchant.add_invoice(1_000)
    attempts = [(999_999, created.payment_addr), (1_000_000, "11" * 32)]
    for amt_msat, payment_addr in attempts:
        with payer.send_payment_v2(
            dest=lnd_network.node("merchant").pubkey,
            amt_msat=amt_msat,
            payment_hash=created.payment_hash,
            payment_addr=payment_addr,
        ) as stream:
            final = list(stream)[-1]
        assert final.failure_reason is FailureReason.INCORRECT_PAYMENT_DETAILS
    assert merchant.lookup_invoice(created.payment_hash).state is InvoiceState.OPEN


def test_a_payment_beyond_the_balance_or_to_a_node_that_is_down_fails(
    lnd_network: LndNetwork, merchant: LndClient, payer: LndClient
) -> None:
    too_big = merchant.add_invoice(100_000_001)  # the payer holds 1 BTC
    assert payer.pay(too_big.payment_request).failure_reason is FailureReason.INSUFFICIENT_BALANCE
    created = merchant.add_invoice(10)
    lnd_network.stop("merchant")
    assert payer.pay(created.payment_request).failure_reason is FailureReason.NO_ROUTE
    lnd_network.start("merchant")
    assert payer.pay(created.payment_request).status is PaymentStatus.SUCCEEDED  # a failed payment may be retried


def test_a_payment_in_flight_is_not_sent_twice(tmp_path: Path) -> None:
    with running_lnd(tmp_path, htlc_delay_s=0.5) as lnd:
        merchant, payer = lnd.client("merchant"), lnd.client("payer")
        created = merchant.add_invoice(10)
        stream = payer.send_payment_v2(created.payment_request)
        assert next(stream).status is PaymentStatus.IN_FLIGHT
        with pytest.raises(LndAlreadyExists, match="payment is in transition"):
            payer.pay(created.payment_request)
        assert [u.status for u in stream] == [PaymentStatus.SUCCEEDED]
        quiet = merchant.add_invoice(11)
        with payer.send_payment_v2(quiet.payment_request, no_inflight_updates=True) as only_final:
            assert [u.status for u in only_final] == [PaymentStatus.SUCCEEDED]


def test_tracking_a_payment_this_node_never_sent_is_not_found(payer: LndClient) -> None:
    with pytest.raises(LndNotFound), payer.track_payment_v2("ab" * 32) as stream:
        next(stream)


# ---- the invoice stream


def test_resubscribing_from_stored_indices_replays_exactly_what_was_missed(
    merchant: LndClient, payer: LndClient
) -> None:
    one, two = merchant.add_invoice(1, memo="one"), merchant.add_invoice(2, memo="two")
    # From add_index 2: "three" arrives whether the subscription or the invoice is first.
    with merchant.subscribe_invoices(add_index=2, timeout_s=10) as stream:
        three = merchant.add_invoice(3, memo="three")
        payer.pay(one.payment_request)
        seen = take(stream, 2)
    assert summary(seen) == [("three", InvoiceState.OPEN, 3, 0), ("one", InvoiceState.SETTLED, 1, 1)]
    add_index, settle_index = max(i.add_index for i in seen), max(i.settle_index for i in seen)

    # While nobody listens: an invoice is added and paid, and an older one is paid.
    four = merchant.add_invoice(4, memo="four")
    payer.pay(two.payment_request)
    payer.pay(four.payment_request)

    with merchant.subscribe_invoices(add_index, settle_index, timeout_s=10) as stream:
        replayed = take(stream, 3)
        merchant.add_invoice(5, memo="five")
        payer.pay(three.payment_request)
        live = take(stream, 2)
    # lnd's replay: invoices added after 3 in their current state, then those settled after 1.
    assert summary(replayed) == [
        ("four", InvoiceState.SETTLED, 4, 3),
        ("two", InvoiceState.SETTLED, 2, 2),
        ("four", InvoiceState.SETTLED, 4, 3),
    ]
    assert summary(live) == [("five", InvoiceState.OPEN, 5, 0), ("three", InvoiceState.SETTLED, 3, 4)]
    settled = {i.settle_index for i in seen + replayed + live if i.state is InvoiceState.SETTLED}
    assert settled == {1, 2, 3, 4}  # every settlement arrived; nothing before the stored indices came again


def test_closing_a_stream_ends_it_quietly(merchant: LndClient) -> None:
    stream = merchant.subscribe_invoices(timeout_s=10)
    merchant.add_invoice(1)
    stream.close()
    assert list(stream) == []


def test_a_stream_fails_transiently_when_the_node_goes_down(lnd_network: LndNetwork, merchant: LndClient) -> None:
    merchant.add_invoice(1)
    with merchant.subscribe_invoices(add_index=1, timeout_s=10) as stream:
        merchant.add_invoice(2)
        assert next(stream).add_index == 2
        lnd_network.stop("merchant")
        with pytest.raises(NodeUnavailable):
            next(stream)


# ---- authentication and failures


def test_a_wrong_macaroon_is_a_permanent_authentication_error(lnd_network: LndNetwork) -> None:
    foreign = lnd_network.node("payer").files.macaroon.read_bytes().hex()
    client = lnd_network.client("merchant", macaroon_hex=foreign)
    with pytest.raises(LndAuthFailed, match="check the macaroon") as info:
        client.get_info()
    assert info.value.grpc_code == "UNAUTHENTICATED" and isinstance(info.value, PermanentError)
    with pytest.raises(LndAuthFailed):
        client.add_invoice(1)
    # lnd answers some macaroon failures as UNKNOWN; they are authentication errors all the same.
    faults = lnd_network.node("merchant").faults
    message = "verification failed: signature mismatch after caveat verification"
    lnd_network.call(faults.fail_next, "GetInfo", grpc.StatusCode.UNKNOWN, 1, message)
    with pytest.raises(LndAuthFailed, match="signature mismatch"):
        lnd_network.client("merchant").get_info()


def test_an_unusable_certificate_or_macaroon_is_a_configuration_error(lnd_network: LndNetwork, tmp_path: Path) -> None:
    node = lnd_network.node("merchant")
    target = lnd_network.target("merchant")
    with pytest.raises(LndConfigError, match="cannot read the lnd TLS certificate"):
        LndClient(target, tls_cert_path=tmp_path / "missing.cert", macaroon_path=node.files.macaroon, timeout_s=1)
    with pytest.raises(LndConfigError, match="not hex"):
        LndClient(target, tls_cert_path=node.files.tls_cert, macaroon_hex="not hex!", timeout_s=1)
    other_cert = lnd_network.node("payer").files.tls_cert
    client = LndClient(target, tls_cert_path=other_cert, macaroon_path=node.files.macaroon, timeout_s=5)
    with pytest.raises(LndConfigError, match="TLS certificate is not the configured one"):
        client.get_info()
    client.close()


def test_a_node_that_is_down_is_unavailable_and_usable_again_once_back(
    lnd_network: LndNetwork, merchant: LndClient
) -> None:
    created = merchant.add_invoice(42)
    lnd_network.stop("merchant")
    for call in (
        merchant.get_info,
        lambda: merchant.lookup_invoice(created.payment_hash),
        lambda: merchant.add_invoice(1),
    ):
        with pytest.raises(NodeUnavailable) as info:
            call()
        assert info.value.details["grpc_code"] == "UNAVAILABLE"
    lnd_network.start("merchant")

    def back() -> LndInvoice | None:
        try:
            return merchant.lookup_invoice(created.payment_hash)
        except NodeUnavailable:
            return None  # the channel may still be in its reconnect backoff

    assert wait_until(back, timeout_s=20, what="the restarted node").value_msat == 42_000


def test_an_answer_later_than_the_deadline_is_node_unavailable(lnd_network: LndNetwork) -> None:
    client = lnd_network.client("merchant", timeout_s=0.3)
    lnd_network.call(lnd_network.node("merchant").faults.delay, "GetInfo", 2.0)
    with pytest.raises(NodeUnavailable) as info:
        client.get_info()
    assert info.value.details["grpc_code"] == "DEADLINE_EXCEEDED"


def test_reads_are_retried_a_few_times_on_transient_codes_but_add_invoice_is_not(
    lnd_network: LndNetwork, merchant: LndClient
) -> None:
    faults = lnd_network.node("merchant").faults
    created = merchant.add_invoice(3)

    lnd_network.call(faults.fail_next, "LookupInvoice", grpc.StatusCode.UNAVAILABLE, 1)
    lnd_network.call(faults.fail_next, "LookupInvoice", grpc.StatusCode.RESOURCE_EXHAUSTED, 1)
    assert merchant.lookup_invoice(created.payment_hash).value_msat == 3_000  # third attempt

    lnd_network.call(faults.fail_next, "GetInfo", grpc.StatusCode.UNAVAILABLE, 3)
    with pytest.raises(NodeUnavailable):
        merchant.get_info()  # three attempts, all refused

    lnd_network.call(faults.fail_next, "AddInvoice", grpc.StatusCode.UNAVAILABLE, 1)
    with pytest.raises(NodeUnavailable):
        merchant.add_invoice(4)
    assert merchant.add_invoice(4).add_index == 2  # the refused call created nothing

    lnd_network.call(faults.fail_next, "LookupInvoice", grpc.StatusCode.INTERNAL, 1)
    with pytest.raises(LndError) as info:
        merchant.lookup_invoice(created.payment_hash)
    assert info.value.grpc_code == "INTERNAL"
