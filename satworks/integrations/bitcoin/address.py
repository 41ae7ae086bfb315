"""Bitcoin addresses: BIP173 bech32, BIP350 bech32m and base58check, checked per network.

Addresses come from apps and customers, so they are validated here, without a node, before any
payment is asked for. Decoding follows the BIP reference implementations: a segwit address is only
valid with the checksum its witness version requires (v0 bech32, v1+ bech32m).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Literal

Network = Literal["mainnet", "testnet", "signet", "regtest"]

HRP: dict[Network, str] = {"mainnet": "bc", "testnet": "tb", "signet": "tb", "regtest": "bcrt"}
P2PKH_VERSION: dict[Network, int] = {"mainnet": 0x00, "testnet": 0x6F, "signet": 0x6F, "regtest": 0x6F}
P2SH_VERSION: dict[Network, int] = {"mainnet": 0x05, "testnet": 0xC4, "signet": 0xC4, "regtest": 0xC4}

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32_MAX_LENGTH = 90
_BECH32M_CONST = 0x2BC830A3
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class Encoding(enum.Enum):
    BECH32 = 1
    BECH32M = _BECH32M_CONST


@dataclass(frozen=True)
class Destination:
    """What an address pays to: a witness program, or a P2PKH/P2SH hash."""

    kind: Literal["witness", "p2pkh", "p2sh"]
    program: bytes
    witver: int | None = None

    @property
    def script_pubkey(self) -> bytes:
        if self.kind == "p2pkh":
            return b"\x76\xa9\x14" + self.program + b"\x88\xac"
        if self.kind == "p2sh":
            return b"\xa9\x14" + self.program + b"\x87"
        assert self.witver is not None
        opcode = 0 if self.witver == 0 else 0x50 + self.witver
        return bytes([opcode, len(self.program)]) + self.program


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            chk ^= gen if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def bech32_encode(hrp: str, data: list[int], encoding: Encoding) -> str:
    """Encode 5-bit ``data`` under ``hrp`` with the checksum of ``encoding``."""
    polymod = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ encoding.value
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in data + checksum)


def bech32_decode(bech: str) -> tuple[str, list[int], Encoding] | None:
    """The HRP, 5-bit data and checksum kind of a bech32/bech32m string; ``None`` if invalid."""
    if any(ord(c) < 33 or ord(c) > 126 for c in bech) or (bech.lower() != bech and bech.upper() != bech):
        return None
    bech = bech.lower()
    pos = bech.rfind("1")
    if pos < 1 or pos + 7 > len(bech) or len(bech) > BECH32_MAX_LENGTH:
        return None
    if any(c not in CHARSET for c in bech[pos + 1 :]):
        return None
    hrp, data = bech[:pos], [CHARSET.find(c) for c in bech[pos + 1 :]]
    const = _polymod(_hrp_expand(hrp) + data)
    encoding = next((e for e in Encoding if e.value == const), None)
    if encoding is None:
        return None
    return hrp, data[:-6], encoding


def _convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int] | None:
    acc, bits, ret = 0, 0, []
    maxv = (1 << tobits) - 1
    max_acc = (1 << (frombits + tobits - 1)) - 1
    for value in data:
        if value < 0 or value >> frombits:
            return None
        acc = ((acc << frombits) | value) & max_acc
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            ret.append((acc >> bits) & maxv)
    if pad:
        if bits:
            ret.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        return None
    return ret


def _program_ok(witver: int, program: bytes | list[int]) -> bool:
    if not 0 <= witver <= 16 or not 2 <= len(program) <= 40:
        return False
    return witver != 0 or len(program) in (20, 32)


def decode_segwit_address(network: Network, address: str) -> tuple[int, bytes] | None:
    """``(witness version, program)`` of a segwit address of ``network``; ``None`` if invalid."""
    decoded = bech32_decode(address)
    if decoded is None:
        return None
    hrp, data, encoding = decoded
    if hrp != HRP[network] or not data:
        return None
    program = _convertbits(data[1:], 5, 8, False)
    if program is None or not _program_ok(data[0], program):
        return None
    if encoding is not (Encoding.BECH32 if data[0] == 0 else Encoding.BECH32M):
        return None
    return data[0], bytes(program)


def encode_segwit_address(network: Network, witver: int, program: bytes) -> str:
    """The address of a witness program: bech32 for v0, bech32m for v1..16."""
    if not _program_ok(witver, program):
        raise ValueError("invalid witness version or program length")
    encoding = Encoding.BECH32 if witver == 0 else Encoding.BECH32M
    data = _convertbits(program, 8, 5, True)
    assert data is not None
    return bech32_encode(HRP[network], [witver, *data], encoding)


def _hash256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def b58check_encode(payload: bytes) -> str:
    data = payload + _hash256(payload)[:4]
    num = int.from_bytes(data, "big")
    out = ""
    while num:
        num, rem = divmod(num, 58)
        out = _B58_ALPHABET[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def b58check_decode(text: str) -> bytes | None:
    """The payload of a base58check string (version byte first); ``None`` on a bad checksum."""
    num = 0
    for char in text:
        idx = _B58_ALPHABET.find(char)
        if idx < 0:
            return None
        num = num * 58 + idx
    body = num.to_bytes((num.bit_length() + 7) // 8, "big")
    data = b"\0" * (len(text) - len(text.lstrip("1"))) + body
    if len(data) < 5 or _hash256(data[:-4])[:4] != data[-4:]:
        return None
    return data[:-4]


def encode_base58_address(network: Network, kind: Literal["p2pkh", "p2sh"], hash160: bytes) -> str:
    version = P2PKH_VERSION[network] if kind == "p2pkh" else P2SH_VERSION[network]
    return b58check_encode(bytes([version]) + hash160)


def decode_address(address: str, network: Network) -> Destination | None:
    """What ``address`` pays to on ``network``, or ``None`` if it is not a valid address there."""
    segwit = decode_segwit_address(network, address)
    if segwit is not None:
        return Destination("witness", segwit[1], segwit[0])
    payload = b58check_decode(address) if len(address) <= 50 else None
    if payload is None or len(payload) != 21:
        return None
    if payload[0] == P2PKH_VERSION[network]:
        return Destination("p2pkh", payload[1:])
    if payload[0] == P2SH_VERSION[network]:
        return Destination("p2sh", payload[1:])
    return None


def is_valid_address(address: str, network: Network) -> bool:
    return decode_address(address, network) is not None


def canonical_address(address: str, network: Network) -> str | None:
    """The one spelling of an address (bech32 in lower case), so equal destinations compare equal."""
    dest = decode_address(address, network)
    if dest is None:
        return None
    return address.lower() if dest.kind == "witness" else address
