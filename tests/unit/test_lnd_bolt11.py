"""BOLT11 as the lnd simulator writes and reads it, and exact millisatoshi arithmetic."""

from __future__ import annotations

import hashlib

import pytest
from bech32 import bech32_encode
from coincurve import PrivateKey

from satworks.devnodes.lnd import bolt11
from satworks.integrations.lnd.records import split_msat

KEY = PrivateKey(hashlib.sha256(b"satworks test node").digest())


def request(amount_msat: int | None, **overrides: object) -> str:
    fields: dict[str, object] = {
        "network": "bcrt",
        "amount_msat": amount_msat,
        "timestamp": 1_700_000_000,
        "payment_hash": hashlib.sha256(b"preimage").digest(),
        "payment_secret": bytes(range(32)),
        "description": "test",
        "expiry_s": 3_600,
        "min_final_cltv": 80,
    }
    fields.update(overrides)
    return bolt11.encode(KEY, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount_msat", "hrp"),
    [
        (1, "lnbcrt10p"),
        (100, "lnbcrt1n"),
        (250_000_000, "lnbcrt2500u"),
        (150_000_000_000, "lnbcrt1500m"),
        (100_000_000_000, "lnbcrt1"),
        (None, "lnbcrt"),
    ],
)
def test_amounts_take_the_shortest_form_and_decode_exactly(amount_msat: int | None, hrp: str) -> None:
    text = request(amount_msat)
    assert text.startswith(hrp + "1")
    decoded = bolt11.decode(text, network="bcrt")
    assert decoded.amount_msat == amount_msat
    assert decoded.payee == KEY.public_key.format()
    assert (decoded.timestamp, decoded.expiry_s, decoded.min_final_cltv) == (1_700_000_000, 3_600, 80)
    assert decoded.features == bolt11.LND_INVOICE_FEATURES and decoded.description == "test"


def test_requests_for_another_network_or_with_a_bad_checksum_are_refused() -> None:
    text = request(1_000)
    with pytest.raises(bolt11.InvalidPaymentRequest, match="not for current active network 'bc'"):
        bolt11.decode(text, network="bc")
    with pytest.raises(bolt11.InvalidPaymentRequest, match="checksum"):
        bolt11.decode(text[:-1] + ("q" if text[-1] != "q" else "p"), network="bcrt")


def test_a_fraction_of_a_millisatoshi_is_not_an_amount() -> None:
    text = bech32_encode("lnbcrt15p", [0] * 120)
    with pytest.raises(bolt11.InvalidPaymentRequest, match="whole number of millisatoshis"):
        bolt11.decode(text, network="bcrt")


def test_a_description_too_long_for_bolt11_is_refused() -> None:
    assert bolt11.decode(request(1, description="x" * 639), network="bcrt").description == "x" * 639
    with pytest.raises(bolt11.InvalidPaymentRequest, match="too long"):
        request(1, description="x" * 640)


def test_millisatoshis_split_into_whole_satoshis_and_a_visible_remainder() -> None:
    assert split_msat(1_234_567) == (1_234, 567)
    assert split_msat(5_000) == (5, 0)
    assert split_msat(999) == (0, 999)
    with pytest.raises(ValueError, match="negative"):
        split_msat(-1)
