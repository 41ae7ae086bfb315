"""Wallet RPCs of the simulator: payments, received amounts and transaction listings, as Core 28 answers.

The entry shapes are Core's ``ListTransactions`` and ``WalletTxToJSON`` (``parent_descs`` left out:
the simulated wallet has no descriptors). ``hex`` is the transaction's real but unsigned
serialization. Amounts, depths and filters follow Core to the letter, including the surprising
parts: with ``minconf=0`` the received totals count every unconfirmed wallet transaction that is
not conflicted, even one no longer in the mempool (e.g. one replaced by ``bumpfee`` whose
replacement is not mined yet).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from satworks.devnodes.bitcoind.chain import TxOut
from satworks.devnodes.bitcoind.chain_rpc import decode_tx
from satworks.devnodes.bitcoind.jsonrpc import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_TYPE_ERROR,
    RPC_WALLET_ERROR,
    Arg,
    Btc,
    RpcError,
    get_int,
    parse_amount,
    parse_hash,
)
from satworks.devnodes.bitcoind.methods import Node, Registry
from satworks.devnodes.bitcoind.wallet import DEFAULT_FEE_RATE, Wallet, WalletTx
from satworks.integrations.bitcoin.address import canonical_address

registry = Registry("Wallet", wallet=True)

RPC_METHOD_DEPRECATED = -32


def tx_json(wallet: Wallet, wtx: WalletTx) -> dict[str, object]:
    """Core's ``WalletTxToJSON``."""
    chain = wallet.chain
    depth = wallet.depth(wtx.txid)
    out: dict[str, object] = {"confirmations": depth}
    if wtx.tx.coinbase:
        out["generated"] = True
    block = chain.block_of(wtx.txid)
    if block is not None:
        out |= {
            "blockhash": block.hash,
            "blockheight": block.height,
            "blockindex": block.txids.index(wtx.txid),
            "blocktime": block.time,
        }
    else:
        out["trusted"] = wallet.trusted(wtx.txid)
    out |= {"txid": wtx.txid, "wtxid": wtx.txid, "walletconflicts": wallet.conflicts(wtx), "mempoolconflicts": []}
    if wtx.replaced_by:
        out["replaced_by_txid"] = wtx.replaced_by
    if wtx.replaces:
        out["replaces_txid"] = wtx.replaces
    out |= {
        "time": wtx.time_received,
        "timereceived": wtx.time_received,
        "bip125-replaceable": wallet.rbf_status(wtx, depth),
    }
    if wtx.comment:
        out["comment"] = wtx.comment
    if wtx.to:
        out["to"] = wtx.to
    return out


def entries(
    wallet: Wallet,
    wtx: WalletTx,
    min_depth: int,
    *,
    long: bool,
    label: str | None = None,
    include_change: bool = False,
) -> list[dict[str, object]]:
    """Core's ``ListTransactions``: one "send" per paid output, one receive-ish entry per output of ours."""
    debit = wallet.debit(wtx)
    fee = debit - wtx.tx.value_out if debit > 0 else 0
    sent, received = [], []
    for vout, out in enumerate(wtx.tx.outputs):
        mine = wallet.is_mine(out.address)
        if debit > 0:
            if not include_change and out.address in wallet.change:
                continue
            sent.append((vout, out))
        elif not mine:
            continue
        if mine:
            received.append((vout, out))
    details = tx_json(wallet, wtx) if long else {}
    result: list[dict[str, object]] = []
    if label is None:
        for vout, out in sent:
            entry: dict[str, object] = {"address": out.address, "category": "send", "amount": Btc(-out.value)}
            if out.address in wallet.labels:
                entry["label"] = wallet.labels[out.address]
            entry |= {"vout": vout, "fee": Btc(-fee)} | details | {"abandoned": wtx.abandoned}
            result.append(entry)
    depth = wallet.depth(wtx.txid)
    if received and depth >= min_depth:
        for vout, out in received:
            own_label = wallet.labels.get(out.address)
            if label is not None and (own_label or "") != label:
                continue
            if wtx.tx.coinbase:
                category = "orphan" if depth < 1 else "immature" if wallet.immature_coinbase(wtx) else "generate"
            else:
                category = "receive"
            entry = {"address": out.address, "category": category, "amount": Btc(out.value)}
            if own_label is not None:
                entry["label"] = own_label
            entry |= {"vout": vout, "abandoned": wtx.abandoned} | details
            result.append(entry)
    return result


def _address(value: str, message: str) -> str:
    address = canonical_address(value, "regtest")
    if address is None:
        raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, message)
    return address


def _wallet_tx(node: Node, value: object) -> WalletTx:
    wtx = node.wallet.txs.get(parse_hash(value, "txid"))
    if wtx is None:
        raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Invalid or non-wallet transaction id")
    return wtx


def _fee_rate(value: object) -> int | None:
    """A ``fee_rate`` in sat/vB (Core allows 3 decimals); the simulator rounds it up to a whole sat/vB."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise RpcError(RPC_TYPE_ERROR, "Amount is not a number or string")
    rate = parse_amount(value) / 100_000_000
    if rate <= 0:
        raise RpcError(RPC_INVALID_PARAMETER, "Invalid fee_rate")
    return math.ceil(rate)


def _last_block(node: Node) -> dict[str, object]:
    return {"hash": node.chain.tip.hash, "height": node.chain.height}


@registry.method("getnewaddress", Arg("label", "string"), Arg("address_type", "string"))
def getnewaddress(node: Node, params: list[Any]) -> object:
    return node.wallet.new_address(params[0] if params[0] is not None else "", params[1] or "bech32")


@registry.method("getrawchangeaddress", Arg("address_type", "string"))
def getrawchangeaddress(node: Node, params: list[Any]) -> object:
    return node.wallet.new_change_address(params[0] or "bech32")


@registry.method(
    "sendtoaddress",
    Arg("address", "string", required=True),
    Arg("amount", "amount", required=True),
    Arg("comment", "string"),
    Arg("comment_to", "string"),
    Arg("subtractfeefromamount", "bool"),
    Arg("replaceable", "bool"),
    Arg("conf_target", "number"),
    Arg("estimate_mode", "string"),
    Arg("avoid_reuse", "bool"),
    Arg("fee_rate", "amount"),
    Arg("verbose", "bool"),
    mutates=True,
)
def sendtoaddress(node: Node, params: list[Any]) -> object:
    address = _address(params[0], f"Invalid Bitcoin address: {params[0]}")
    amount = parse_amount(params[1])
    if amount <= 0:
        raise RpcError(RPC_TYPE_ERROR, "Invalid amount for send")
    fee_rate = _fee_rate(params[9])
    txid = node.wallet.send(
        address,
        amount,
        subtract_fee=bool(params[4]),
        replaceable=params[5] is not False,  # -walletrbf defaults to true since Core 24
        fee_rate=fee_rate or DEFAULT_FEE_RATE,
        comment=params[2],
        to=params[3],
    )
    if params[10]:
        return {"txid": txid, "fee_reason": "Fallback fee" if fee_rate is None else "Fee rate from user"}
    return txid


@registry.method("bumpfee", Arg("txid", "string", required=True), Arg("options", "object"), mutates=True)
def bumpfee(node: Node, params: list[Any]) -> object:
    options = params[1] or {}
    txid = parse_hash(params[0], "txid")
    outputs = options.get("outputs")
    payments = None if outputs is None else _outputs(outputs)
    return node.wallet.bump_fee(txid, _fee_rate(options.get("fee_rate")), payments)


def _outputs(value: object) -> list[TxOut]:
    """``bumpfee``'s ``outputs`` option (Core 24+): ``{address: amount}`` or a list of such objects; they
    replace the original's payments (e.g. a payer taking a payment back to itself)."""
    items = value if isinstance(value, list) else [value]
    objects = [item for item in items if isinstance(item, dict)]
    if len(objects) != len(items):
        raise RpcError(RPC_TYPE_ERROR, "outputs must be an object or an array of objects")
    pairs = [pair for item in objects for pair in item.items()]
    if not pairs:
        raise RpcError(RPC_INVALID_PARAMETER, "Invalid parameter, output argument cannot be an empty array")
    seen: set[str] = set()
    payments = []
    for raw, amount in pairs:
        address = _address(raw, f"Invalid Bitcoin address: {raw}")
        if address in seen:
            raise RpcError(RPC_INVALID_PARAMETER, f"Invalid parameter, duplicated address: {raw}")
        seen.add(address)
        payments.append(TxOut(address, parse_amount(amount)))
    return payments


@registry.method("abandontransaction", Arg("txid", "string", required=True), mutates=True)
def abandontransaction(node: Node, params: list[Any]) -> object:
    node.wallet.abandon(parse_hash(params[0], "txid"))
    return None


@registry.method(
    "gettransaction", Arg("txid", "string", required=True), Arg("include_watchonly", "bool"), Arg("verbose", "bool")
)
def gettransaction(node: Node, params: list[Any]) -> object:
    wallet = node.wallet
    wtx = _wallet_tx(node, params[0])
    debit = wallet.debit(wtx)
    fee = wtx.tx.value_out - debit if debit > 0 else 0
    out: dict[str, object] = {"amount": Btc(wallet.credit(wtx) - debit - fee)}
    if debit > 0:
        out["fee"] = Btc(fee)
    out |= tx_json(wallet, wtx)
    out["details"] = entries(wallet, wtx, 0, long=False)
    out["hex"] = wtx.tx.hex
    if params[2]:
        out["decoded"] = decode_tx(wallet.chain, wtx.tx)
    return out


def received_by(wallet: Wallet, addresses: set[str] | None, min_depth: int, include_immature: bool) -> dict[str, Any]:
    """Core's tally for getreceivedbyaddress/listreceivedbyaddress: amount, least depth, txids per address."""
    tally: dict[str, Any] = {}
    for wtx in wallet.txs.values():
        depth = wallet.depth(wtx.txid)
        if depth < min_depth or (wtx.tx.coinbase and depth < 1):
            continue
        if wallet.immature_coinbase(wtx) and not include_immature:
            continue
        for out in wtx.tx.outputs:
            if (addresses is None and wallet.is_mine(out.address)) or (addresses and out.address in addresses):
                item = tally.setdefault(out.address, {"amount": 0, "confirmations": math.inf, "txids": []})
                item["amount"] += out.value
                item["confirmations"] = min(item["confirmations"], depth)
                item["txids"].append(wtx.txid)
    return tally


@registry.method(
    "getreceivedbyaddress",
    Arg("address", "string", required=True),
    Arg("minconf", "number"),
    Arg("include_immature_coinbase", "bool"),
)
def getreceivedbyaddress(node: Node, params: list[Any]) -> object:
    address = _address(params[0], "Invalid Bitcoin address")
    if not node.wallet.is_mine(address):
        raise RpcError(RPC_WALLET_ERROR, "Address not found in wallet")
    tally = received_by(node.wallet, {address}, get_int(params[1], 1), bool(params[2]))
    return Btc(tally[address]["amount"] if address in tally else 0)


@registry.method(
    "listreceivedbyaddress",
    Arg("minconf", "number"),
    Arg("include_empty", "bool"),
    Arg("include_watchonly", "bool"),
    Arg("address_filter", "string"),
    Arg("include_immature_coinbase", "bool"),
)
def listreceivedbyaddress(node: Node, params: list[Any]) -> object:
    wallet = node.wallet
    only: str | None = None
    if params[3] is not None:
        only = canonical_address(params[3], "regtest")
        if only is None:
            raise RpcError(RPC_WALLET_ERROR, "address_filter parameter was invalid")
    tally = received_by(wallet, None, get_int(params[0], 1), bool(params[4]))
    result = []
    for address, label in wallet.labels.items():
        if (only is not None and address != only) or (address not in tally and not params[1]):
            continue
        item = tally.get(address, {"amount": 0, "confirmations": math.inf, "txids": []})
        confirmations = 0 if item["confirmations"] == math.inf else item["confirmations"]
        result.append(
            {
                "address": address,
                "amount": Btc(item["amount"]),
                "confirmations": confirmations,
                "label": label,
                "txids": item["txids"],
            }
        )
    return result


@registry.method(
    "listsinceblock",
    Arg("blockhash", "string"),
    Arg("target_confirmations", "number"),
    Arg("include_watchonly", "bool"),
    Arg("include_removed", "bool"),
    Arg("include_change", "bool"),
    Arg("label", "string"),
)
def listsinceblock(node: Node, params: list[Any]) -> object:
    chain, wallet = node.chain, node.wallet
    target = get_int(params[1], 1)
    include_removed = params[3] is not False
    include_change = bool(params[4])
    since = None
    depth = -1
    if params[0]:
        since = chain.blocks.get(parse_hash(params[0], "blockhash"))
        if since is None:
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
        depth = chain.height + 1 - chain.fork_point(since).height
    if target < 1:
        raise RpcError(RPC_INVALID_PARAMETER, "Invalid parameter")
    transactions = []
    for wtx in wallet.txs.values():
        if depth == -1 or abs(wallet.depth(wtx.txid)) < depth:
            transactions += entries(wallet, wtx, 0, long=True, label=params[5], include_change=include_change)
    removed = []
    if since is not None and include_removed:
        fork = chain.fork_point(since)
        block = since
        while block.height > fork.height:
            for txid in block.txids:
                if txid in wallet.txs:
                    removed += entries(
                        wallet,
                        wallet.txs[txid],
                        -100_000_000,
                        long=True,
                        label=params[5],
                        include_change=include_change,
                    )
            assert block.prev is not None
            block = chain.blocks[block.prev]
    target = min(target, chain.height + 1)
    result: dict[str, object] = {"transactions": transactions}
    if include_removed:
        result["removed"] = removed
    result["lastblock"] = chain.active[chain.height + 1 - target]
    return result


@registry.method(
    "listtransactions",
    Arg("label", "string"),
    Arg("count", "number"),
    Arg("skip", "number"),
    Arg("include_watchonly", "bool"),
)
def listtransactions(node: Node, params: list[Any]) -> object:
    label = None if params[0] in (None, "*") else params[0]
    count, skip = get_int(params[1], 10), get_int(params[2], 0)
    if count < 0:
        raise RpcError(RPC_INVALID_PARAMETER, "Negative count")
    if skip < 0:
        raise RpcError(RPC_INVALID_PARAMETER, "Negative from")
    found: list[dict[str, object]] = []
    for wtx in reversed(node.wallet.txs.values()):
        found += entries(node.wallet, wtx, 0, long=True, label=label)
        if len(found) >= count + skip:
            break
    return list(reversed(found[skip : skip + count]))


@registry.method(
    "getbalance",
    Arg("dummy", "string"),
    Arg("minconf", "number"),
    Arg("include_watchonly", "bool"),
    Arg("avoid_reuse", "bool"),
)
def getbalance(node: Node, params: list[Any]) -> object:
    if params[0] is not None and params[0] != "*":
        raise RpcError(RPC_METHOD_DEPRECATED, 'dummy first argument must be excluded or set to "*".')
    return Btc(node.wallet.balances(get_int(params[1], 0))["trusted"])


@registry.method("getbalances")
def getbalances(node: Node, params: list[Any]) -> object:
    mine = {k: Btc(v) for k, v in node.wallet.balances().items()}
    return {"mine": mine, "lastprocessedblock": _last_block(node)}


@registry.method("getwalletinfo")
def getwalletinfo(node: Node, params: list[Any]) -> object:
    balances = node.wallet.balances()
    return {
        "walletname": node.wallet.name,
        "walletversion": 169900,
        "format": "sqlite",
        "balance": Btc(balances["trusted"]),
        "unconfirmed_balance": Btc(balances["untrusted_pending"]),
        "immature_balance": Btc(balances["immature"]),
        "txcount": len(node.wallet.txs),
        "keypoolsize": 4000,
        "keypoolsize_hd_internal": 4000,
        "paytxfee": Btc(0),
        "private_keys_enabled": True,
        "avoid_reuse": False,
        "scanning": False,
        "descriptors": True,
        "external_signer": False,
        "blank": False,
        "lastprocessedblock": _last_block(node),
    }


@registry.method("listwallets", wallet=False)
def listwallets(node: Node, params: list[Any]) -> object:
    return list(node.wallets)


@registry.method(
    "createwallet",
    Arg("wallet_name", "string", required=True),
    Arg("disable_private_keys", "bool"),
    Arg("blank", "bool"),
    Arg("passphrase", "string"),
    Arg("avoid_reuse", "bool"),
    Arg("descriptors", "bool"),
    Arg("load_on_startup", "bool"),
    Arg("external_signer", "bool"),
    wallet=False,
)
def createwallet(node: Node, params: list[Any]) -> object:
    """A new empty wallet, loaded: e.g. a customer's wallet paying the shop's, as on a regtest setup."""
    name = params[0]
    if name in node.wallets or name == "":
        raise RpcError(
            RPC_WALLET_ERROR,
            f"Wallet file verification failed. Failed to create database path '{name}'. Database already exists.",
        )
    node.wallets[name] = Wallet(node.chain, name)
    return {"name": name, "warnings": []}
