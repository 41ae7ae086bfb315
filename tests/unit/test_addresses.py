"""Address validation against the BIP173/BIP350 test vectors and a few base58 cases."""

from __future__ import annotations

import pytest

from satworks.integrations.bitcoin.address import (
    Encoding,
    Network,
    bech32_decode,
    canonical_address,
    decode_address,
    decode_segwit_address,
    encode_base58_address,
    encode_segwit_address,
    is_valid_address,
)

VALID_BECH32 = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11" + "q" * 82 + "c8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]
INVALID_BECH32 = [
    "\x201nwldj5",
    "\x7f1axkwrx",
    "\x801eym55h",
    "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
    "pzry9x0s0muk",
    "1pzry9x0s0muk",
    "x1b4n0q5v",
    "li1dgmt3",
    "de1lg7wt\xff",
    "A1G7SGD8",
    "10a06t8",
    "1qzzfhee",
]
VALID_BECH32M = [
    "A1LQFN3A",
    "a1lqfn3a",
    "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
    "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
    "11" + "l" * 83 + "udsr8",
    "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
    "?1v759aa",
]
INVALID_BECH32M = [
    "\x201xj0phk",
    "\x7f1g6xzxy",
    "\x801vctc34",
    "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
    "qyrz8wqd2c9m",
    "1qyrz8wqd2c9m",
    "y1b0jsk6g",
    "lt1igcx5c0",
    "in1muywd",
    "mm1crxm3i",
    "au1s5cgom",
    "M1VUXWEZ",
    "16plkw9",
    "1p2gdwpf",
]
# (address, network, scriptPubKey hex) from BIP350
VALID_ADDRESSES: list[tuple[str, Network, str]] = [
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "mainnet", "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "testnet",
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
    ),
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
        "mainnet",
        "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    ("BC1SW50QGDZ25J", "mainnet", "6002751e"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "mainnet", "5210751e76e8199196d454941c45d1b3a323"),
    (
        "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        "testnet",
        "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
        "signet",
        "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "mainnet",
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    ),
]
INVALID_ADDRESSES = [
    "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
    "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf",
    "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
    "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47",
    "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",
    "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R",
    "bc1pw5dgrnzv",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
    "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",
    "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf",
    "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j",
    "bc1gmk9yu",
]
NETWORKS: list[Network] = ["mainnet", "testnet", "signet", "regtest"]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [(s, Encoding.BECH32) for s in VALID_BECH32] + [(s, Encoding.BECH32M) for s in VALID_BECH32M],
)
def test_valid_checksums(text: str, encoding: Encoding) -> None:
    decoded = bech32_decode(text)
    assert decoded is not None
    assert decoded[2] is encoding


@pytest.mark.parametrize("text", VALID_BECH32)
def test_bech32_string_is_not_bech32m(text: str) -> None:
    decoded = bech32_decode(text)
    assert decoded is not None and decoded[2] is not Encoding.BECH32M


@pytest.mark.parametrize("text", INVALID_BECH32 + INVALID_BECH32M)
def test_invalid_checksums(text: str) -> None:
    decoded = bech32_decode(text)
    # a few BIP350 strings are valid bech32 (the other checksum); none is valid bech32m
    assert decoded is None or (text in INVALID_BECH32M and decoded[2] is Encoding.BECH32)
    if text in INVALID_BECH32:
        assert decoded is None or decoded[2] is Encoding.BECH32M


@pytest.mark.parametrize(("address", "network", "script"), VALID_ADDRESSES)
def test_valid_segwit_addresses(address: str, network: Network, script: str) -> None:
    assert is_valid_address(address, network)
    dest = decode_address(address, network)
    assert dest is not None and dest.script_pubkey.hex() == script
    witver, program = decode_segwit_address(network, address) or (-1, b"")
    assert encode_segwit_address(network, witver, program) == address.lower()
    assert canonical_address(address, network) == address.lower()


@pytest.mark.parametrize("address", INVALID_ADDRESSES)
def test_invalid_segwit_addresses(address: str) -> None:
    assert not any(is_valid_address(address, network) for network in NETWORKS)


@pytest.mark.parametrize(("address", "network", "_script"), VALID_ADDRESSES)
def test_network_mismatch_is_rejected(address: str, network: Network, _script: str) -> None:
    hrp_twins = {"testnet": "signet", "signet": "testnet"}
    others = [n for n in NETWORKS if n not in (network, hrp_twins.get(network))]
    assert not any(is_valid_address(address, other) for other in others)


def test_regtest_addresses_roundtrip_and_reject_other_networks() -> None:
    program = bytes(range(20))
    address = encode_segwit_address("regtest", 0, program)
    assert address.startswith("bcrt1q")
    assert decode_segwit_address("regtest", address) == (0, program)
    taproot = encode_segwit_address("regtest", 1, bytes(32))
    assert taproot.startswith("bcrt1p") and is_valid_address(taproot, "regtest")
    assert not is_valid_address(address, "mainnet") and not is_valid_address(address, "testnet")
    assert not is_valid_address(address.upper()[:-1] + address[-1], "regtest")  # mixed case


@pytest.mark.parametrize(("witver", "length"), [(0, 21), (17, 32), (1, 1), (16, 41)])
def test_encoding_refuses_invalid_programs(witver: int, length: int) -> None:
    with pytest.raises(ValueError):
        encode_segwit_address("mainnet", witver, bytes(length))


@pytest.mark.parametrize(
    ("address", "network", "script"),
    [
        (
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            "mainnet",
            "76a91477bff20c60e522dfaa3350c39b030a5d004e839a88ac",
        ),
        ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "mainnet", "a914b472a266d0bd89c13706a4132ccfb16f7c3b9fcb87"),
    ],
)
def test_base58_addresses(address: str, network: Network, script: str) -> None:
    dest = decode_address(address, network)
    assert dest is not None and dest.script_pubkey.hex() == script
    assert not is_valid_address(address, "regtest")
    assert not is_valid_address(address[:-1] + ("3" if address[-1] != "3" else "4"), network)  # checksum


def test_base58_test_networks_share_version_bytes() -> None:
    h160 = bytes.fromhex("77bff20c60e522dfaa3350c39b030a5d004e839a")
    p2pkh = encode_base58_address("regtest", "p2pkh", h160)
    p2sh = encode_base58_address("testnet", "p2sh", h160)
    assert p2pkh[0] in "mn" and p2sh[0] == "2"
    for network in ("testnet", "signet", "regtest"):
        assert is_valid_address(p2pkh, network) and is_valid_address(p2sh, network)
    assert not is_valid_address(p2pkh, "mainnet") and not is_valid_address(p2sh, "mainnet")
    assert encode_base58_address("mainnet", "p2pkh", h160) == "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"
    assert not is_valid_address("", "mainnet") and not is_valid_address("0OIl", "mainnet")
