"""Bitcoin Core's JSON-RPC conventions for the simulator: errors, exact amounts and argument binding.

Kept apart from the chain model so that the wire rules (what Core answers for a bad type, how an
amount is written) live in one place and match ``src/rpc/{request,util,server}.cpp``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

COIN = 100_000_000
MAX_MONEY = 21_000_000 * COIN

# Core's RPCErrorCode values used by the simulator
RPC_MISC_ERROR = -1
RPC_TYPE_ERROR = -3
RPC_WALLET_ERROR = -4
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_WALLET_INSUFFICIENT_FUNDS = -6
RPC_INVALID_PARAMETER = -8
RPC_WALLET_INVALID_LABEL_NAME = -11
RPC_WALLET_NOT_FOUND = -18
RPC_WALLET_NOT_SPECIFIED = -19
RPC_VERIFY_REJECTED = -26
RPC_IN_WARMUP = -28
RPC_INVALID_REQUEST = -32600
RPC_METHOD_NOT_FOUND = -32601
RPC_PARSE_ERROR = -32700

ArgType = Literal["string", "number", "amount", "bool", "object", "array", "any"]


class RpcError(Exception):
    """An RPC failure as Core reports it: ``{"code", "message"}``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Btc:
    """An amount held in satoshis and written as a BTC number with 8 decimals, never via a float."""

    sat: int


@dataclass(frozen=True)
class RawNumber:
    """A JSON number token written as is (e.g. the difficulty), for values that are not amounts."""

    token: str


def format_btc(sat: int) -> str:
    sign = "-" if sat < 0 else ""
    whole, frac = divmod(abs(sat), COIN)
    return f"{sign}{whole}.{frac:08d}"


def dumps(value: object) -> str:
    """JSON text in which ``Btc`` amounts keep their exact decimal digits."""
    if isinstance(value, Btc):
        return format_btc(value.sat)
    if isinstance(value, RawNumber):
        return value.token
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


def _reject_constant(token: str) -> Any:
    raise ValueError(f"invalid JSON constant {token}")


def loads(text: bytes) -> Any:
    """Parse a request: numbers with a fraction or exponent become ``Decimal`` (amounts stay exact)."""
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


def json_type(value: object) -> str:
    """UniValue's type name, used in Core's type-error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def parse_amount(value: object) -> int:
    """Core's ``AmountFromValue``: a number or numeric string of at most 8 decimals, in satoshis."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise RpcError(RPC_TYPE_ERROR, "Amount is not a number or string")
    try:
        amount = Decimal(value) if not isinstance(value, Decimal) else value
        if not amount.is_finite() or amount != amount.quantize(Decimal("1e-8")):
            raise RpcError(RPC_TYPE_ERROR, "Invalid amount")
    except (InvalidOperation, ValueError):
        raise RpcError(RPC_TYPE_ERROR, "Invalid amount") from None
    sat = int(amount * COIN)
    if not 0 <= sat <= MAX_MONEY:
        raise RpcError(RPC_TYPE_ERROR, "Amount out of range")
    return sat


def get_int(value: object, default: int) -> int:
    """UniValue's ``getInt``: only integral JSON numbers (a fraction is Core's "out of range")."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcError(RPC_MISC_ERROR, "JSON integer out of range")
    return value


def parse_hash(value: object, name: str) -> str:
    """Core's ``ParseHashV``: 64 hex digits (txid, block hash), lower-cased."""
    text = value if isinstance(value, str) else ""
    if len(text) != 64:
        raise RpcError(RPC_INVALID_PARAMETER, f"{name} must be of length 64 (not {len(text)}, for '{text}')")
    try:
        bytes.fromhex(text)
    except ValueError:
        raise RpcError(RPC_INVALID_PARAMETER, f"{name} must be hexadecimal string (not '{text}')") from None
    return text.lower()


@dataclass(frozen=True)
class Arg:
    name: str
    type: ArgType
    required: bool = False


def usage(method: str, args: Sequence[Arg]) -> str:
    parts = [a.name if a.required else f"( {a.name} )" for a in args]
    return " ".join([method, *parts]) + "\n"


def _matches(value: object, expected: ArgType) -> bool:
    if expected in ("any", "amount"):  # amounts are checked by parse_amount, as in Core
        return True
    return json_type(value) == expected


def bind(method: str, args: Sequence[Arg], params: list[Any] | dict[str, Any]) -> list[Any]:
    """Positional or named params → one value per argument (``None`` when absent), checked like Core.

    Named params follow ``transformNamedArguments`` (unknown name → -8); the count check gives the
    usage text as a -1 error; wrong JSON types give one -3 "Wrong type passed" listing every mismatch.
    """
    if isinstance(params, dict):
        names = [a.name for a in args]
        for key in params:
            if key not in names:
                raise RpcError(RPC_INVALID_PARAMETER, f"Unknown named parameter {key}")
        given = [i for i, name in enumerate(names) if name in params]
        values: list[Any] = [params.get(name) for name in names[: (max(given) + 1 if given else 0)]]
    else:
        values = list(params)
    required = max((i + 1 for i, a in enumerate(args) if a.required), default=0)
    if not required <= len(values) <= len(args):
        raise RpcError(RPC_MISC_ERROR, usage(method, args))
    mismatches = {
        f"Position {i + 1} ({arg.name})": (f"JSON value of type {json_type(value)} is not of expected type {arg.type}")
        for i, (arg, value) in enumerate(zip(args, values, strict=False))
        if not (value is None and not arg.required) and not _matches(value, arg.type)
    }
    if mismatches:
        raise RpcError(RPC_TYPE_ERROR, "Wrong type passed:\n" + json.dumps(mismatches, indent=4))
    return values + [None] * (len(args) - len(values))
