"""The simulated regtest bitcoind, driven only as a real node is: AuthServiceProxy and raw HTTP."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiohttp import web
from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException

from satworks.devnodes.bitcoind.server import BitcoindConfig
from satworks.integrations.bitcoin.address import decode_address, is_valid_address
from tests.integration.bitcoind_fixtures import BitcoindNode, running_bitcoind
from tests.support import eventually

AUTH = {"Authorization": "Basic " + base64.b64encode(b"user:pass").decode()}


@pytest.fixture
def node() -> Iterator[BitcoindNode]:
    with running_bitcoind() as running:
        yield running


def rpc_of(node: BitcoindNode, path: str = "") -> Any:
    proxy = AuthServiceProxy(node.url + path, timeout=10)
    node.add_cleanup(proxy._AuthServiceProxy__conn.close)  # the library never closes its connection
    return proxy


def rpc_error(call: Callable[[], object]) -> JSONRPCException:
    with pytest.raises(JSONRPCException) as info:
        call()
    return info.value


def post(node: BitcoindNode, body: object, *, path: str = "/", headers: dict[str, str] | None = None) -> httpx.Response:
    url = f"http://127.0.0.1:{node.port}{path}"
    return httpx.post(url, json=body, headers=AUTH if headers is None else headers, timeout=10)


def funded(node: BitcoindNode) -> tuple[Any, str, list[str]]:
    """A proxy, the miner's address and the hashes of 101 blocks: one mature coinbase to spend."""
    rpc = rpc_of(node)
    miner = rpc.getnewaddress("miner")
    return rpc, miner, rpc.generatetoaddress(101, miner)


# ---- HTTP and JSON-RPC


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic " + base64.b64encode(b"user:nope").decode()}])
def test_bad_or_missing_auth_is_401_with_an_empty_body(node: BitcoindNode, headers: dict[str, str]) -> None:
    response = post(node, {"method": "getblockcount"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="jsonrpc"'
    assert response.content == b""
    error = rpc_error(lambda: AuthServiceProxy(node.url.replace(":pass@", ":nope@")).getblockcount())
    assert error.code == -342  # python-bitcoinrpc's "non-JSON HTTP response"


def test_only_post_is_served(node: BitcoindNode) -> None:
    response = httpx.get(f"http://127.0.0.1:{node.port}/", headers=AUTH)
    assert response.status_code == 405


def test_legacy_errors_are_http_errors_with_both_members(node: BitcoindNode) -> None:
    response = post(node, {"version": "1.1", "method": "getblockhash", "params": [5], "id": 7})
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"result": None, "error": {"code": -8, "message": "Block height out of range"}, "id": 7}
    assert rpc_error(lambda: rpc_of(node).getblockhash(5)).code == -8

    ok = post(node, {"method": "getblockcount", "id": "a"})
    assert ok.status_code == 200 and ok.json() == {"result": 0, "error": None, "id": "a"}


def test_unknown_method_is_404_legacy_but_200_in_jsonrpc_2(node: BitcoindNode) -> None:
    legacy = post(node, {"method": "nosuchmethod", "params": [], "id": 1})
    assert legacy.status_code == 404
    assert legacy.json()["error"] == {"code": -32601, "message": "Method not found"}
    assert rpc_error(lambda: rpc_of(node).nosuchmethod()).code == -32601

    v2 = post(node, {"jsonrpc": "2.0", "method": "nosuchmethod", "id": 2})
    assert v2.status_code == 200
    assert v2.json() == {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 2}
    ok = post(node, {"jsonrpc": "2.0", "method": "getblockcount", "id": 3})
    assert ok.json() == {"jsonrpc": "2.0", "result": 0, "id": 3}
    notification = post(node, {"jsonrpc": "2.0", "method": "getblockcount"})
    assert notification.status_code == 204 and notification.content == b""


def test_parse_errors_invalid_requests_and_batches(node: BitcoindNode) -> None:
    url = f"http://127.0.0.1:{node.port}/"
    garbage = httpx.post(url, content=b"{not json", headers=AUTH)
    assert garbage.status_code == 500 and garbage.json()["error"]["code"] == -32700
    no_method = post(node, {"id": 1})
    assert no_method.status_code == 400
    assert no_method.json() == {"result": None, "error": {"code": -32600, "message": "Missing method"}, "id": 1}

    batch = post(
        node,
        [
            {"method": "getblockcount", "id": 1},
            {"jsonrpc": "2.0", "method": "getblockhash", "params": [9], "id": 2},
            {"jsonrpc": "2.0", "method": "getblockcount"},
            5,
        ],
    )
    assert batch.status_code == 200
    assert batch.json() == [
        {"result": 0, "error": None, "id": 1},
        {"jsonrpc": "2.0", "error": {"code": -8, "message": "Block height out of range"}, "id": 2},
        {"result": None, "error": {"code": -32600, "message": "Invalid Request object"}},
    ]
    # python-bitcoinrpc's batch_ sends JSON-RPC 2.0 items and trips over their missing "error"
    with pytest.raises(KeyError):
        rpc_of(node).batch_([["getblockcount"]])


def test_named_params_types_and_counts(node: BitcoindNode) -> None:
    named = post(node, {"method": "getblockhash", "params": {"height": 0}, "id": 1})
    assert named.json()["result"] == "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    unknown = post(node, {"method": "getblockhash", "params": {"heigth": 0}, "id": 1})
    assert unknown.json()["error"] == {"code": -8, "message": "Unknown named parameter heigth"}
    rpc = rpc_of(node)
    wrong_type = rpc_error(lambda: rpc.getblockhash("0"))
    assert wrong_type.code == -3 and "Position 1 (height)" in wrong_type.message
    assert rpc_error(lambda: rpc.getblockhash()).code == -1
    assert rpc_error(lambda: rpc.getblockhash(0, 1)).code == -1


def test_wallet_endpoints(node: BitcoindNode) -> None:
    assert is_valid_address(rpc_of(node, "/wallet/satworks").getnewaddress(), "regtest")
    assert is_valid_address(rpc_of(node, "/wallet/").getnewaddress(), "regtest")
    missing = rpc_of(node, "/wallet/other")
    assert rpc_error(missing.getnewaddress).code == -18
    assert missing.getblockcount() == 0  # chain RPCs ignore the wallet path, as in Core


def test_warmup_answers_minus_28_until_ready() -> None:
    with running_bitcoind(BitcoindConfig(rpc_user="user", rpc_password="pass", warmup_s=600)) as node:
        error = rpc_error(rpc_of(node).getblockcount)
        assert error.code == -28 and error.message.startswith("Loading wallet")
        node.call_soon(node.sim.set_warming_up, 0)
        assert rpc_of(node).getblockcount() == 0
        node.call_soon(node.sim.set_warming_up, 600)
        assert rpc_error(rpc_of(node).getbestblockhash).code == -28


def test_node_down_and_restart_keep_state(node: BitcoindNode) -> None:
    rpc = rpc_of(node)
    rpc.generatetoaddress(3, rpc.getnewaddress())
    node.sim_stop()
    with pytest.raises(ConnectionRefusedError):
        rpc_of(node).getblockcount()
    node.sim_start()
    assert rpc_of(node).getblockcount() == 3


def test_concurrent_requests_are_served_consistently(node: BitcoindNode) -> None:
    def client(_: int) -> list[str]:
        rpc = rpc_of(node)
        return [rpc.getnewaddress() for _ in range(10)]

    with ThreadPoolExecutor(8) as pool:
        addresses = [a for batch in pool.map(client, range(8)) for a in batch]
    assert len(set(addresses)) == 80


# ---- wallet and chain


def test_getnewaddress_gives_valid_regtest_addresses(node: BitcoindNode) -> None:
    rpc = rpc_of(node)
    expected = {"bech32": ("bcrt1q", 0, 20), "bech32m": ("bcrt1p", 1, 32)}
    for address_type, (prefix, witver, length) in expected.items():
        address = rpc.getnewaddress("", address_type)
        dest = decode_address(address, "regtest")
        assert address.startswith(prefix) and dest is not None
        assert (dest.witver, len(dest.program)) == (witver, length)
    assert rpc.getnewaddress().startswith("bcrt1q")
    assert decode_address(rpc.getnewaddress("", "legacy"), "regtest").kind == "p2pkh"  # type: ignore[union-attr]
    assert decode_address(rpc.getnewaddress("", "p2sh-segwit"), "regtest").kind == "p2sh"  # type: ignore[union-attr]
    assert rpc_error(lambda: rpc.getnewaddress("", "p2pk")).code == -5


def test_payment_is_seen_in_the_mempool_then_confirmed(node: BitcoindNode) -> None:
    rpc, miner, _ = funded(node)
    assert rpc.getbalance() == Decimal("50")
    address = rpc.getnewaddress("order-1")
    txid = rpc.sendtoaddress(address, Decimal("0.00012345"))
    assert len(txid) == 64

    assert rpc.getreceivedbyaddress(address, 0) == Decimal("0.00012345")
    assert rpc.getreceivedbyaddress(address) == 0
    entry = rpc.getmempoolentry(txid)
    assert entry["fees"]["base"] > 0 and entry["vsize"] > 0 and entry["bip125-replaceable"] is True
    tx = rpc.gettransaction(txid)
    assert tx["confirmations"] == 0 and tx["trusted"] is True and tx["bip125-replaceable"] == "yes"
    receive = [d for d in tx["details"] if d["category"] == "receive"]
    assert receive == [
        {"address": address, "category": "receive", "amount": Decimal("0.00012345"), "label": "order-1",
         "vout": receive[0]["vout"], "abandoned": False}
    ]  # fmt: skip
    assert [d["amount"] for d in tx["details"] if d["category"] == "send"] == [Decimal("-0.00012345")]

    block = rpc.generatetoaddress(1, miner)[0]
    tx = rpc.gettransaction(txid)
    assert (tx["confirmations"], tx["blockhash"], tx["blockheight"]) == (1, block, 102)
    assert "trusted" not in tx and tx["bip125-replaceable"] == "no"
    assert txid in rpc.getblock(block)["tx"]
    assert rpc_error(lambda: rpc.getmempoolentry(txid)).code == -5
    rpc.generatetoaddress(5, miner)
    assert rpc.gettransaction(txid)["confirmations"] == 6
    assert rpc.getreceivedbyaddress(address, 6) == Decimal("0.00012345")
    assert rpc.getreceivedbyaddress(address, 7) == 0
    listed = rpc.listreceivedbyaddress(1, False, False, address)
    assert listed == [
        {"address": address, "amount": Decimal("0.00012345"), "confirmations": 6, "label": "order-1", "txids": [txid]}
    ]


def test_amounts_are_exact_and_validated(node: BitcoindNode) -> None:
    rpc, _, _ = funded(node)
    address = rpc.getnewaddress()
    for amount in ("0.00012345", "0.1", "1.23456789", "20.99999999"):
        txid = rpc.sendtoaddress(address, Decimal(amount))
        details = rpc.gettransaction(txid)["details"]
        assert [d["amount"] for d in details if d["category"] == "receive"] == [Decimal(amount)]
    body = post(node, {"method": "getreceivedbyaddress", "params": [address, 0], "id": 1}).text
    assert '"result":22.33469133' in body  # the JSON number itself has 8 exact decimals

    assert rpc_error(lambda: rpc.sendtoaddress(address, "0.123456789")).code == -3
    assert rpc_error(lambda: rpc.sendtoaddress(address, 0)).code == -3
    assert rpc_error(lambda: rpc.sendtoaddress(address, -1)).code == -3
    assert rpc_error(lambda: rpc.sendtoaddress("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", 1)).code == -5
    assert rpc_error(lambda: rpc.sendtoaddress(address, 1000)).code == -6
    assert rpc_error(lambda: rpc.getreceivedbyaddress("nope")).code == -5
    external = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
    assert is_valid_address(external, "regtest")
    assert rpc_error(lambda: rpc.getreceivedbyaddress(external)).code == -4


def test_nothing_is_spendable_before_maturity(node: BitcoindNode) -> None:
    rpc = rpc_of(node)
    miner = rpc.getnewaddress()
    rpc.generatetoaddress(100, miner)
    assert rpc.getbalance() == 0
    assert rpc_error(lambda: rpc.sendtoaddress(miner, 1)).code == -6
    entries = rpc.listsinceblock()["transactions"]
    assert {e["category"] for e in entries} == {"immature"}
    rpc.generatetoaddress(1, miner)
    assert rpc.getbalance() == 50
    assert "generate" in {e["category"] for e in rpc.listsinceblock()["transactions"]}


def test_listsinceblock_lastblock_feeds_the_next_call(node: BitcoindNode) -> None:
    rpc, miner, hashes = funded(node)
    address = rpc.getnewaddress("shop")
    since = rpc.listsinceblock(hashes[-1])
    assert since == {"transactions": [], "removed": [], "lastblock": hashes[-1]}

    txid = rpc.sendtoaddress(address, Decimal("0.5"))
    first = rpc.listsinceblock(since["lastblock"])
    receives = [e for e in first["transactions"] if e["category"] == "receive"]
    assert [(e["txid"], e["confirmations"], e["label"]) for e in receives] == [(txid, 0, "shop")]
    assert first["lastblock"] == hashes[-1]

    block = rpc.generatetoaddress(1, miner)[0]
    second = rpc.listsinceblock(first["lastblock"])
    assert [e["blockhash"] for e in second["transactions"] if e["txid"] == txid] == [block, block]
    assert second["lastblock"] == block
    assert rpc.listsinceblock(second["lastblock"])["transactions"] == []
    # with target_confirmations=6, lastblock stays 5 blocks behind the tip so confirmations keep showing
    rpc.generatetoaddress(10, miner)
    assert rpc.listsinceblock(block, 6)["lastblock"] == rpc.getblockhash(rpc.getblockcount() - 5)
    assert rpc_error(lambda: rpc.listsinceblock("00" * 32)).code == -5


def test_reorg_returns_a_confirmed_payment_to_the_mempool(node: BitcoindNode) -> None:
    rpc, miner, hashes = funded(node)
    address = rpc.getnewaddress()
    txid = rpc.sendtoaddress(address, Decimal("1.5"))
    block = rpc.generatetoaddress(1, miner)[0]
    assert rpc.getreceivedbyaddress(address) == Decimal("1.5")

    rpc.invalidateblock(block)
    assert rpc.getbestblockhash() == hashes[-1]
    assert rpc.getblock(block)["confirmations"] == -1
    tx = rpc.gettransaction(txid)
    assert tx["confirmations"] == 0 and "blockhash" not in tx and tx["trusted"] is True
    assert rpc.getmempoolentry(txid)["height"] == 101
    assert rpc.getreceivedbyaddress(address) == 0
    assert rpc.getreceivedbyaddress(address, 0) == Decimal("1.5")
    since = rpc.listsinceblock(block)
    assert since["lastblock"] == hashes[-1]
    assert {e["txid"] for e in since["removed"]} >= {txid}
    assert [e["confirmations"] for e in since["transactions"] if e["txid"] == txid] == [0, 0]

    other = rpc.generatetoaddress(1, miner)[0]
    assert other != block and rpc.gettransaction(txid)["blockhash"] == other
    rpc.invalidateblock(other)
    rpc.reconsiderblock(block)
    assert rpc.getbestblockhash() == block
    assert rpc.gettransaction(txid)["blockhash"] == block


def test_reorg_drops_a_payment_funded_by_a_disconnected_coinbase(node: BitcoindNode) -> None:
    rpc, miner, hashes = funded(node)
    address = rpc.getnewaddress("order-2")
    txid = rpc.sendtoaddress(address, Decimal("2"))
    tip = rpc.generatetoaddress(1, miner)[0]
    assert rpc.getreceivedbyaddress(address) == 2

    rpc.invalidateblock(hashes[0])  # the block whose coinbase funded the payment
    assert rpc.getblockcount() == 0
    tx = rpc.gettransaction(txid)
    assert tx["confirmations"] == 0 and tx["trusted"] is False
    assert rpc_error(lambda: rpc.getmempoolentry(txid)).code == -5
    assert rpc.getreceivedbyaddress(address) == 0
    # Core counts every unconfirmed, non-conflicted wallet tx at minconf=0, even one that left the mempool
    assert rpc.getreceivedbyaddress(address, 0) == 2
    since = rpc.listsinceblock(tip)
    removed = [(e["txid"], e["category"]) for e in since["removed"] if e["txid"] == txid]
    assert sorted(removed) == [(txid, "receive"), (txid, "send")]
    assert since["lastblock"] == rpc.getblockhash(0)
    assert rpc.getbalance() == 0


def test_bumpfee_conflict_gives_negative_confirmations(node: BitcoindNode) -> None:
    rpc, miner, _ = funded(node)
    address = rpc.getnewaddress()
    original = rpc.sendtoaddress(address, Decimal("0.3"))
    bumped = rpc.bumpfee(original)
    replacement = bumped["txid"]
    assert bumped["fee"] > bumped["origfee"] > 0 and bumped["errors"] == []
    assert rpc_error(lambda: rpc.getmempoolentry(original)).code == -5
    assert rpc.getmempoolentry(replacement)["fees"]["base"] == bumped["fee"]
    before = rpc.gettransaction(original)
    assert before["confirmations"] == 0 and before["replaced_by_txid"] == replacement
    assert before["walletconflicts"] == [replacement]
    assert rpc.gettransaction(replacement)["walletconflicts"] == [original]
    assert rpc_error(lambda: rpc.bumpfee(original)).code == -4  # already bumped

    rpc.generatetoaddress(1, miner)
    assert rpc.gettransaction(original)["confirmations"] == -1
    assert rpc.gettransaction(replacement)["confirmations"] == 1
    rpc.generatetoaddress(1, miner)
    assert rpc.gettransaction(original)["confirmations"] == -2
    assert rpc.getreceivedbyaddress(address, 0) == Decimal("0.3")  # conflicted txs never count
    assert rpc_error(lambda: rpc.bumpfee(replacement)).code == -4  # mined

    final = rpc.sendtoaddress(address, Decimal("0.1"), "", "", False, False)
    assert rpc.gettransaction(final)["bip125-replaceable"] == "no"
    error = rpc_error(lambda: rpc.bumpfee(final))
    assert (error.code, error.message) == (-4, "Transaction is not BIP 125 replaceable")


def external_payer(node: BitcoindNode) -> tuple[Any, Any, str]:
    """The shop's wallet and a customer's own wallet (with 50 spendable BTC) on the same node."""
    rpc_of(node).createwallet("payer")
    shop, payer = rpc_of(node, "/wallet/satworks"), rpc_of(node, "/wallet/payer")
    miner = payer.getnewaddress()
    payer.generatetoaddress(101, miner)
    return shop, payer, miner


def test_wallets_are_created_and_addressed_by_path(node: BitcoindNode) -> None:
    rpc = rpc_of(node)
    assert rpc.createwallet("payer") == {"name": "payer", "warnings": []}
    assert rpc_error(lambda: rpc.createwallet("payer")).code == -4
    assert rpc.listwallets() == ["satworks", "payer"]
    error = rpc_error(rpc.getnewaddress)  # two wallets loaded: the path must name one, as in Core
    assert error.code == -19
    assert rpc.getblockcount() == 0
    shop, payer = rpc_of(node, "/wallet/satworks"), rpc_of(node, "/wallet/payer")
    address = payer.getnewaddress()
    assert rpc_error(lambda: shop.getreceivedbyaddress(address)).code == -4  # not the shop's address


def test_a_payment_from_another_wallet_is_a_receive_only_for_the_shop(node: BitcoindNode) -> None:
    shop, payer, _ = external_payer(node)
    address = shop.getnewaddress("order")
    txid = payer.sendtoaddress(address, Decimal("0.2"))
    tx = shop.gettransaction(txid)
    assert (tx["amount"], [d["category"] for d in tx["details"]]) == (Decimal("0.2"), ["receive"])
    assert "fee" not in tx
    assert [e["category"] for e in shop.listsinceblock()["transactions"]] == ["receive"]
    assert shop.getbalances()["mine"]["untrusted_pending"] == Decimal("0.2")


def test_a_conflicted_payment_shows_no_receive_to_the_shop(node: BitcoindNode) -> None:
    shop, payer, miner = external_payer(node)
    address = shop.getnewaddress("order")
    original = payer.sendtoaddress(address, Decimal("0.2"))
    replacement = payer.bumpfee(original)["txid"]
    replaced = shop.gettransaction(original)
    assert (replaced["confirmations"], replaced["walletconflicts"]) == (0, [replacement])
    assert [d["category"] for d in replaced["details"]] == ["receive"]  # unconfirmed, not conflicted yet
    assert sorted(shop.listreceivedbyaddress(0, True, True, address)[0]["txids"]) == sorted([original, replacement])

    block = payer.generatetoaddress(1, miner)[0]
    gone = shop.gettransaction(original)
    assert (gone["confirmations"], gone["walletconflicts"], gone["details"]) == (-1, [replacement], [])
    assert shop.listreceivedbyaddress(0, True, True, address)[0]["txids"] == [replacement]
    since = shop.listsinceblock()["transactions"]
    assert [e["txid"] for e in since if e["address"] == address] == [replacement]
    assert original not in {e["txid"] for e in shop.listtransactions()}

    shop.invalidateblock(block)  # the replacement back in the mempool: the original is only replaced
    assert shop.gettransaction(original)["confirmations"] == 0


def test_a_payment_taken_back_by_a_fee_bump_is_conflicted_with_no_wallet_conflict(node: BitcoindNode) -> None:
    shop, payer, miner = external_payer(node)
    address = shop.getnewaddress("order")
    original = payer.sendtoaddress(address, Decimal("0.2"))
    refund = payer.getnewaddress()
    taken_back = payer.bumpfee(original, {"outputs": [{refund: Decimal("0.2")}]})["txid"]
    assert payer.gettransaction(taken_back)["details"][0]["address"] == refund
    assert rpc_error(lambda: shop.gettransaction(taken_back)).code == -5  # not the shop's transaction
    assert shop.gettransaction(original)["walletconflicts"] == []
    assert shop.listreceivedbyaddress(0, True, True, address)[0]["txids"] == [original]
    duplicated = rpc_error(lambda: payer.bumpfee(taken_back, {"outputs": [{refund: 1}, {refund: 1}]}))
    assert (duplicated.code, duplicated.message) == (-8, f"Invalid parameter, duplicated address: {refund}")
    payer.generatetoaddress(1, miner)
    gone = shop.gettransaction(original)
    assert (gone["confirmations"], gone["walletconflicts"], gone["details"]) == (-1, [], [])


def test_chain_tips_show_the_branches_a_reorg_left(node: BitcoindNode) -> None:
    rpc, miner, hashes = funded(node)
    assert rpc.getchaintips() == [{"height": 101, "hash": hashes[-1], "branchlen": 0, "status": "active"}]
    rpc.invalidateblock(hashes[-2])
    new = rpc.generatetoaddress(3, miner)
    assert rpc.getchaintips() == [
        {"height": 102, "hash": new[-1], "branchlen": 0, "status": "active"},
        {"height": 101, "hash": hashes[-1], "branchlen": 2, "status": "invalid"},
    ]
    rpc.reconsiderblock(hashes[-2])  # the longer chain stays; the old branch is a valid fork now
    assert rpc.getchaintips()[1] == {"height": 101, "hash": hashes[-1], "branchlen": 2, "status": "valid-fork"}


# ---- notifications


class Receiver:
    """A tiny HTTP endpoint collecting walletnotify/blocknotify calls."""

    def __init__(self) -> None:
        self.wallet: list[str] = []
        self.blocks: list[str] = []
        self.changed = asyncio.Condition()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/wallet/{txid}", self._wallet)
        app.router.add_post("/block/{hash}", self._block)
        return app

    async def _wallet(self, request: web.Request) -> web.Response:
        return await self._record(self.wallet, request.match_info["txid"])

    async def _block(self, request: web.Request) -> web.Response:
        return await self._record(self.blocks, request.match_info["hash"])

    async def _record(self, into: list[str], value: str) -> web.Response:
        async with self.changed:
            into.append(value)
            self.changed.notify_all()
        return web.Response(status=204)

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), timeout)


async def test_walletnotify_and_blocknotify_reach_their_urls(aiohttp_server: Any) -> None:
    receiver = Receiver()
    server = await aiohttp_server(receiver.app())
    base = f"http://127.0.0.1:{server.port}"
    config = BitcoindConfig(
        rpc_user="user", rpc_password="pass", walletnotify_url=f"{base}/wallet/%s", blocknotify_url=f"{base}/block/%s"
    )
    node = await asyncio.to_thread(BitcoindNode, config)
    try:
        rpc = rpc_of(node)
        miner = await asyncio.to_thread(rpc.getnewaddress)
        hashes = await asyncio.to_thread(rpc.generatetoaddress, 101, miner)
        await receiver.until(lambda: set(hashes) <= set(receiver.blocks))  # delivery order is not guaranteed
        assert sorted(receiver.blocks) == sorted(hashes)
        await receiver.until(lambda: len(set(receiver.wallet)) == 101)  # each coinbase is a wallet tx

        address = await asyncio.to_thread(rpc.getnewaddress)
        txid = await asyncio.to_thread(rpc.sendtoaddress, address, Decimal("0.25"))
        await receiver.until(lambda: txid in receiver.wallet)
        block = (await asyncio.to_thread(rpc.generatetoaddress, 1, miner))[0]
        await receiver.until(lambda: receiver.wallet.count(txid) == 2 and block in receiver.blocks)

        await asyncio.to_thread(rpc.invalidateblock, block)
        await receiver.until(lambda: receiver.wallet.count(txid) == 3 and receiver.blocks.count(hashes[-1]) == 2)
    finally:
        await asyncio.to_thread(node.close)


async def test_notifications_before_the_intake_listens_are_dropped_quietly_then_failures_warn(
    aiohttp_server: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="satworks.devnodes")
    receiver = Receiver()
    server = await aiohttp_server(receiver.app())
    port = server.port
    await server.close()  # nothing listens there yet: the intake of the quick start is still starting
    config = BitcoindConfig(rpc_user="user", rpc_password="pass", blocknotify_url=f"http://127.0.0.1:{port}/block/%s")
    node = await asyncio.to_thread(BitcoindNode, config)
    try:
        rpc = rpc_of(node)
        miner = await asyncio.to_thread(rpc.getnewaddress)
        await asyncio.to_thread(rpc.generatetoaddress, 5, miner)
        await eventually(lambda: _now(node.read(lambda: node.sim.notify_failures) >= 5 or None), what="5 failures")
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []

        server = await aiohttp_server(receiver.app(), port=port)  # the intake listens now
        hashes = await asyncio.to_thread(rpc.generatetoaddress, 1, miner)
        await receiver.until(lambda: hashes[0] in receiver.blocks)
        await server.close()
        await asyncio.to_thread(rpc.generatetoaddress, 1, miner)  # once it answered, a failure is a warning
        await eventually(
            lambda: _now([r for r in caplog.records if r.levelno == logging.WARNING] or None), what="a warning"
        )
    finally:
        await asyncio.to_thread(node.close)


async def _now(value: Any) -> Any:
    return value
