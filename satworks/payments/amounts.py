"""Exact conversion between the node's decimal BTC and integer satoshis."""

from __future__ import annotations

from decimal import Decimal

SAT_PER_BTC = 100_000_000
MAX_SAT = 21_000_000 * SAT_PER_BTC


def btc_to_sat(value: Decimal | int | str) -> int:
    """``Decimal("0.00012345")`` → ``12345``. Raises ``ValueError`` for a fraction of a satoshi or a float."""
    if isinstance(value, float):
        raise ValueError("amounts must not be floats")
    sat = Decimal(value) * SAT_PER_BTC
    if sat != sat.to_integral_value():
        raise ValueError(f"{value} BTC is not a whole number of satoshis")
    return int(sat)


def sat_to_btc(sat: int) -> Decimal:
    return (Decimal(sat) / SAT_PER_BTC).quantize(Decimal("0.00000001"))
