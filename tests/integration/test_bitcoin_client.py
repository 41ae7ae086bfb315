"""The typed Bitcoin Core client against the simulator: its records, idle reconnects, exact amounts."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from decimal import Decimal

import pytest
from bitcoinrpc.authproxy import AuthServiceProxy

from satworks.devnodes.bitcoind.server import BitcoindConfig
from satworks.errors import NodeUnavailable
from satworks.integrations.bitcoin.rpc import BitcoinRpc, RpcError
from tests.integration.bitcoind_fixtures import BitcoindNode, running_bitcoind
from tests.support import wait_until

IDLE_CLOSE_S = 0.2


@pytest.fixture
def node() -> Iterator[BitcoindNode]:
    config = BitcoindConfig(rpc_user="user", rpc_password="pass", rpcservertimeout_s=IDLE_CLOSE_S)
    with running_bitcoind(config) as running:
        yield running


def client_of(node: BitcoindNode) -> BitcoinRpc:
    rpc = BitcoinRpc(node.url, timeout_s=10)
    node.add_cleanup(rpc.close)
    return rpc


def idle_closed(node: BitcoindNode) -> None:
    """Wait until the node has closed every connection, as Core does after -rpcservertimeout."""
    wait_until(lambda: node.read(lambda: node.sim.open_connections) == 0, what="the node to close idle connections")


def funded(rpc: BitcoinRpc) -> str:
    miner = rpc.new_address("miner")
    rpc.call("generatetoaddress", 101, miner)
    return miner


# ---- connections


def test_python_bitcoinrpc_alone_fails_on_the_first_call_after_the_idle_close(node: BitcoindNode) -> None:
    proxy = AuthServiceProxy(node.url, timeout=10)
    node.add_cleanup(proxy._AuthServiceProxy__conn.close)
    proxy.getblockcount()
    idle_closed(node)
    with pytest.raises((BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected)):
        proxy.getblockcount()


def test_a_call_after_the_node_closed_the_idle_connection_succeeds_and_counts_one_reconnect(node: BitcoindNode) -> None:
    rpc = client_of(node)
    assert rpc.block_count() == 0
    for _ in range(3):
        idle_closed(node)
        assert rpc.block_count() == 0  # no NodeUnavailable
    assert (rpc.calls, rpc.reconnects) == (4, 3)


def test_a_read_whose_answer_was_lost_on_a_reused_connection_is_sent_once_more(node: BitcoindNode) -> None:
    rpc = client_of(node)
    rpc.block_count()
    node.call_soon(node.sim.drop_answers, 1)
    assert rpc.block_count() == 0
    assert rpc.reconnects == 1


def test_a_read_is_sent_again_only_once(node: BitcoindNode) -> None:
    rpc = client_of(node)
    rpc.block_count()
    node.call_soon(node.sim.drop_answers, 2)
    with pytest.raises(NodeUnavailable):
        rpc.block_count()
    assert rpc.block_count() == 0  # the next call opens a new connection


def test_a_write_whose_answer_was_lost_is_not_sent_again(node: BitcoindNode) -> None:
    rpc = client_of(node)
    rpc.block_count()
    node.call_soon(node.sim.drop_answers, 1)
    with pytest.raises(NodeUnavailable):
        rpc.new_address("order-1")
    labelled = [e for e in rpc.call("listreceivedbyaddress", 0, True) if e["label"] == "order-1"]
    assert len(labelled) == 1  # the node made the address once; the job's retry decides what next


def test_a_lost_answer_on_a_fresh_connection_is_not_an_idle_close(node: BitcoindNode) -> None:
    rpc = client_of(node)
    node.call_soon(node.sim.drop_answers, 1)
    with pytest.raises(NodeUnavailable):
        rpc.block_count()
    assert rpc.reconnects == 0


# ---- amounts


def test_amounts_go_on_the_wire_exactly(node: BitcoindNode) -> None:
    rpc = client_of(node)
    funded(rpc)
    address = rpc.new_address("exact")
    txid = rpc.call("sendtoaddress", address, Decimal("12.34567891"))
    tx = rpc.get_transaction(txid)
    assert tx is not None
    assert [r.amount_sat for r in tx.receives] == [1_234_567_891]
    # Sent as a float, a sub-satoshi amount becomes another, valid one: the node pays 15,000 sat.
    proxy = AuthServiceProxy(node.url, timeout=10)
    node.add_cleanup(proxy._AuthServiceProxy__conn.close)
    rounded = rpc.get_transaction(proxy.sendtoaddress(address, Decimal("0.000150005")))
    assert rounded is not None and [r.amount_sat for r in rounded.receives] == [15_000]
    # Sent exactly, the node sees what was asked and refuses it.
    with pytest.raises(RpcError) as refused:
        rpc.call("sendtoaddress", address, Decimal("0.000150005"))
    assert (refused.value.rpc_code, refused.value.message) == (-3, "bitcoind error -3: Invalid amount")
    with pytest.raises(TypeError):
        rpc.call("sendtoaddress", address, 0.0001)


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
