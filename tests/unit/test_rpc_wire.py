"""What the Bitcoin client puts on the wire: amounts as exact decimal strings, never floats."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from bitcoinrpc.authproxy import EncodeDecimal

from satworks.integrations.bitcoin.transport import wire


def test_decimals_are_sent_as_their_exact_digits_where_the_library_rounds_them() -> None:
    for text in ("0.000150005", "92233720368.54775807", "20999999.99999999", "0.00000001"):
        assert wire(Decimal(text)) == text
    assert json.dumps(Decimal("0.000150005"), default=EncodeDecimal) == "0.00015"
    assert json.dumps(Decimal("92233720368.54775807"), default=EncodeDecimal) == "92233720368.54776"


def test_nested_parameters_are_converted_and_other_values_kept() -> None:
    params = ["addr", {"fee_rate": Decimal("2.5"), "replaceable": True}, [Decimal("1E-8")], 3, None]
    assert wire(params) == ["addr", {"fee_rate": "2.5", "replaceable": True}, ["0.00000001"], 3, None]


def test_floats_and_non_finite_decimals_are_refused() -> None:
    with pytest.raises(TypeError):
        wire(0.1)
    with pytest.raises(ValueError):
        wire(Decimal("NaN"))
