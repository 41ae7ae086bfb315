"""The typed Bitcoin Core client against the simulator: its records."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from satworks.integrations.bitcoin.rpc import BitcoinRpc
from tests.integration.bitcoind_fixtures import BitcoindNode, running_bitcoind


@pytest.fixture
def node() -> Iterator[BitcoindNode]:
    with running_bitcoind() as running:
        yield running


def client_of(node: BitcoindNode) -> BitcoinRpc:
    rpc = BitcoinRpc(node.url, timeout_s=10)
    node.add_cleanup(rpc.close)
    return rpc


def funded(rpc: BitcoinRpc) -> str:
    miner = rpc.new_address("miner")
    rpc.call("generatetoaddress", 101, miner)
    return miner


# ---- records


def test_transactions_read_as_records_in_satoshis_with_their_liveness(node: BitcoindNode) -> None:
    rpc = client_of(node)
    miner = funded(rpc)
    address = rpc.new_address("shop")
    assert rpc.received_by_address(address) == []
    txid = rpc.call("sendtoaddress", address, Decimal("0.00070000"))
    pending = rpc.get_transaction(txid)
    assert pending is not None
    assert (pending.confirmations, pending.in_mempool, pending.alive, pending.replaceable) == (0, True, True, True)
    assert [(r.address, r.amount_sat) for r in pending.receives] == [(address, 70_000)]
    assert (pending.block_hash, pending.block_height) == (None, None)
    assert rpc.received_by_address(address) == [txid]

    [block] = rpc.call("generatetoaddress", 1, miner)
    mined = rpc.get_transaction(txid)
    assert mined is not None
    assert (mined.confirmations, mined.in_mempool, mined.block_hash, mined.block_height) == (1, False, block, 102)
    assert rpc.get_transaction("ab" * 32) is None


def test_blocks_and_cursors(node: BitcoindNode) -> None:
    rpc = client_of(node)
    funded(rpc)
    tip = rpc.get_block_hash(101)
    assert tip is not None and rpc.get_block_hash(102) is None
    header = rpc.get_block_header(tip)
    assert header is not None and (header.height, header.confirmations) == (101, 1)
    assert header.previous_hash == rpc.get_block_hash(100)
    assert rpc.get_block_header("00" * 32) is None
    rpc.call("invalidateblock", tip)
    off_chain = rpc.get_block_header(tip)
    assert off_chain is not None and off_chain.confirmations == -1

    since = rpc.list_since_block(None)
    assert (since.from_start, since.last_block) == (True, rpc.get_block_hash(100))
    assert rpc.list_since_block(since.last_block).from_start is False
    assert rpc.list_since_block("00" * 32).from_start is True  # unknown cursor: from the start, not stuck


def test_watched_addresses(node: BitcoindNode) -> None:
    rpc = client_of(node)
    assert rpc.is_watched(rpc.new_address("mine")) is True
    assert rpc.is_watched("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080") is False
