"""BOLT11 payment requests, written and read as lnd's zpay32 does: bech32 (the reference
implementation) for the checksum, libsecp256k1 (coincurve) for the recoverable signature.

A request is ``ln`` + network + amount, then 5-bit words: a 35-bit timestamp, tagged fields
(p payment hash, s payment secret, d description, x expiry, c min final CLTV delta, 9 features)
and a 65-byte recoverable signature of sha256(hrp + data). BOLT11 strings are longer than
bech32's 90 characters; the ``bech32`` package's decoder does not enforce that limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from bech32 import CHARSET, bech32_decode, bech32_encode, convertbits
from coincurve import PrivateKey, PublicKey

DEFAULT_EXPIRY_S = 3600  # BOLT11's value when the x field is absent
DEFAULT_MIN_FINAL_CLTV = 18  # BOLT11's value when the c field is absent
# lnd's invoice feature set (feature/default_sets.go, SetInvoice): var_onion_optin and
# payment_secret required, basic_mpp and route_blinding optional.
LND_INVOICE_FEATURES = frozenset({8, 14, 17, 25})
MAX_FIELD_WORDS = 1023  # a tagged field's length is 10 bits
_SIGNATURE_WORDS = 104  # 65 bytes
_TIMESTAMP_WORDS = 7  # 35 bits
_MSAT_PER_BTC = 10**11
_MULTIPLIERS = (("m", 10**8), ("u", 10**5), ("n", 10**2))  # msat per unit; "p" is a tenth of a msat


class InvalidPaymentRequest(ValueError):
    pass


@dataclass(frozen=True)
class PaymentRequest:
    network: str  # the hrp's currency part: "bcrt" for regtest
    amount_msat: int | None  # None: the payer chooses
    timestamp: int  # unix seconds
    payment_hash: bytes
    payment_secret: bytes | None
    description: str | None
    expiry_s: int
    min_final_cltv: int
    features: frozenset[int]
    payee: bytes  # 33-byte compressed public key, recovered from the signature

    @property
    def expires_at(self) -> int:
        return self.timestamp + self.expiry_s


def encode(
    key: PrivateKey,
    *,
    network: str,
    amount_msat: int | None,
    timestamp: int,
    payment_hash: bytes,
    payment_secret: bytes,
    description: str,
    expiry_s: int,
    min_final_cltv: int,
    features: frozenset[int] = LND_INVOICE_FEATURES,
) -> str:
    """The signed BOLT11 string; raises ``InvalidPaymentRequest`` for a field BOLT11 cannot hold."""
    hrp = "ln" + network + (_encode_amount(amount_msat) if amount_msat else "")
    words = _int_words(timestamp, _TIMESTAMP_WORDS)
    words += _field("p", _bytes_words(payment_hash))
    words += _field("d", _bytes_words(description.encode()))
    words += _field("x", _int_words(expiry_s))
    words += _field("c", _int_words(min_final_cltv))
    words += _field("s", _bytes_words(payment_secret))
    words += _field("9", _int_words(sum(1 << bit for bit in features)))
    signature = key.sign_recoverable(_signed_message(hrp, words))  # sha256, 64 bytes + recovery id
    return bech32_encode(hrp, words + _bytes_words(signature))


def decode(text: str, *, network: str) -> PaymentRequest:
    """Parse and check a request for ``network``; raises ``InvalidPaymentRequest`` with lnd's wording."""
    hrp, data = bech32_decode(text.strip().lower())
    if hrp is None or data is None:
        raise InvalidPaymentRequest("invalid bech32 string or checksum")
    if not hrp.startswith("ln" + network) or (hrp[2 + len(network) :][:1] or "0").isalpha():
        raise InvalidPaymentRequest(f"invoice not for current active network '{network}'")
    amount_msat = _decode_amount(hrp[2 + len(network) :])
    if len(data) < _TIMESTAMP_WORDS + _SIGNATURE_WORDS:
        raise InvalidPaymentRequest("data too short")
    words, signature = data[:-_SIGNATURE_WORDS], _words_bytes(data[-_SIGNATURE_WORDS:])
    fields: dict[str, list[int]] = {}
    i = _TIMESTAMP_WORDS
    while i < len(words):
        if i + 3 > len(words):
            raise InvalidPaymentRequest("truncated tagged field")
        tag, length = CHARSET[words[i]], words[i + 1] * 32 + words[i + 2]
        fields.setdefault(tag, words[i + 3 : i + 3 + length])  # the first of a repeated field counts
        i += 3 + length
    if i != len(words):
        raise InvalidPaymentRequest("truncated tagged field")
    try:
        payee = PublicKey.from_signature_and_message(signature, _signed_message(hrp, words)).format()
    except ValueError as exc:
        raise InvalidPaymentRequest(f"invalid signature: {exc}") from None
    if "n" in fields and _words_bytes(fields["n"])[:33] != payee:
        raise InvalidPaymentRequest("signature does not match the destination (n) field")
    if "p" not in fields or len(fields["p"]) != 52:
        raise InvalidPaymentRequest("invoice must have a payment hash")
    description = _words_bytes(fields["d"]).decode("utf-8", "replace") if "d" in fields else None
    return PaymentRequest(
        network=network,
        amount_msat=amount_msat,
        timestamp=_words_int(words[:_TIMESTAMP_WORDS]),
        payment_hash=_words_bytes(fields["p"])[:32],
        payment_secret=_words_bytes(fields["s"])[:32] if len(fields.get("s", ())) == 52 else None,
        description=description,
        expiry_s=_words_int(fields["x"]) if "x" in fields else DEFAULT_EXPIRY_S,
        min_final_cltv=_words_int(fields["c"]) if "c" in fields else DEFAULT_MIN_FINAL_CLTV,
        features=frozenset(b for b in range(len(fields.get("9", ())) * 5) if _words_int(fields["9"]) >> b & 1),
        payee=payee,
    )


def _signed_message(hrp: str, words: list[int]) -> bytes:
    return hrp.encode("ascii") + _words_bytes(words, pad=True)


def _field(tag: str, words: list[int]) -> list[int]:
    if len(words) > MAX_FIELD_WORDS:
        raise InvalidPaymentRequest(f"field {tag} is too long for a payment request")
    return [CHARSET.index(tag), len(words) >> 5, len(words) & 31, *words]


def _int_words(value: int, length: int = 0) -> list[int]:
    words = []
    while value:
        words.append(value & 31)
        value >>= 5
    return [0] * (length - len(words)) + words[::-1]


def _words_int(words: list[int]) -> int:
    value = 0
    for word in words:
        value = value << 5 | word
    return value


def _bytes_words(data: bytes) -> list[int]:
    words = convertbits(data, 8, 5, True)
    assert words is not None
    return words


def _words_bytes(words: list[int], *, pad: bool = False) -> bytes:
    """The bytes of the words: trailing bits short of a byte must be zero, or with ``pad`` are zero-filled."""
    values = convertbits(words, 5, 8, pad)
    if values is None:
        raise InvalidPaymentRequest("invalid padding")
    return bytes(values)


def _encode_amount(msat: int) -> str:
    """The shortest of lnd's forms: ``2500u`` for 250 000 000 msat."""
    if msat % _MSAT_PER_BTC == 0:
        return str(msat // _MSAT_PER_BTC)
    for unit, per in _MULTIPLIERS:
        if msat % per == 0:
            return f"{msat // per}{unit}"
    return f"{msat * 10}p"


def _decode_amount(text: str) -> int | None:
    if not text:
        return None
    digits, unit = (text[:-1], text[-1]) if text[-1] in "munp" else (text, "")
    if not digits.isdigit():
        raise InvalidPaymentRequest(f"invalid amount {text!r}")
    if unit == "p":
        if int(digits) % 10:
            raise InvalidPaymentRequest("amount is not a whole number of millisatoshis")
        return int(digits) // 10
    return int(digits) * (dict(_MULTIPLIERS)[unit] if unit else _MSAT_PER_BTC)
