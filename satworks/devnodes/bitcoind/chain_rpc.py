"""Blockchain, mining, control and util RPCs of the simulator, shaped like Core 28's answers."""

from __future__ import annotations

import time
from typing import Any

from satworks.devnodes.bitcoind.chain import REGTEST_BITS, Block, Chain, Tx
from satworks.devnodes.bitcoind.jsonrpc import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPC_TYPE_ERROR,
    Arg,
    Btc,
    RawNumber,
    RpcError,
    get_int,
    json_type,
    parse_hash,
    usage,
)
from satworks.devnodes.bitcoind.methods import Node, Registry
from satworks.integrations.bitcoin.address import canonical_address, decode_address

registry = Registry("Blockchain")

REGTEST_DIFFICULTY = RawNumber("4.656542373906925e-10")
REGTEST_TARGET = "7fffff" + "0" * 58
MAX_TIP_AGE = 24 * 60 * 60


def script_type(address: str) -> str:
    dest = decode_address(address, "regtest")
    if dest is None:
        return "nonstandard"
    if dest.kind == "p2pkh":
        return "pubkeyhash"
    if dest.kind == "p2sh":
        return "scripthash"
    known = {(0, 20): "witness_v0_keyhash", (0, 32): "witness_v0_scripthash", (1, 32): "witness_v1_taproot"}
    return known.get((dest.witver or 0, len(dest.program)), "witness_unknown")


def decode_tx(chain: Chain, tx: Tx) -> dict[str, object]:
    """``decoderawtransaction``'s shape (no asm/desc); coinbases show their scriptSig."""
    size = len(tx.hex) // 2
    vin: list[dict[str, object]] = []
    if tx.coinbase:
        script_len = int(tx.hex[82:84], 16)
        vin.append({"coinbase": tx.hex[84 : 84 + 2 * script_len], "sequence": tx.sequence})
    for op in tx.inputs:
        vin.append({"txid": op.txid, "vout": op.vout, "scriptSig": {"asm": "", "hex": ""}, "sequence": tx.sequence})
    vout = [
        {
            "value": Btc(out.value),
            "n": n,
            "scriptPubKey": {"hex": _script_hex(out.address), "address": out.address, "type": script_type(out.address)},
        }
        for n, out in enumerate(tx.outputs)
    ]
    return {
        "txid": tx.txid,
        "hash": tx.txid,
        "version": int.from_bytes(bytes.fromhex(tx.hex[:8]), "little"),
        "size": size,
        "vsize": size,
        "weight": size * 4,
        "locktime": tx.locktime,
        "vin": vin,
        "vout": vout,
    }


def _script_hex(address: str) -> str:
    dest = decode_address(address, "regtest")
    return dest.script_pubkey.hex() if dest else ""


def find_block(node: Node, value: object) -> Block:
    block = node.chain.blocks.get(parse_hash(value, "blockhash"))
    if block is None:
        raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
    return block


def header_json(chain: Chain, block: Block) -> dict[str, object]:
    version = int.from_bytes(block.header[:4], "little")
    out: dict[str, object] = {
        "hash": block.hash,
        "confirmations": chain.block_depth(block),
        "height": block.height,
        "version": version,
        "versionHex": f"{version:08x}",
        "merkleroot": block.merkle_root,
        "time": block.time,
        "mediantime": chain.median_time_past(block),
        "nonce": block.nonce,
        "bits": f"{REGTEST_BITS:08x}",
        "target": REGTEST_TARGET,
        "difficulty": REGTEST_DIFFICULTY,
        "chainwork": f"{2 * (block.height + 1):064x}",
        "nTx": len(block.txids),
    }
    if block.prev:
        out["previousblockhash"] = block.prev
    if chain.is_active(block.hash) and block.height < chain.height:
        out["nextblockhash"] = chain.active[block.height + 1]
    return out


def _verbosity(value: object, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    if not isinstance(value, int):
        raise RpcError(RPC_TYPE_ERROR, f"JSON value of type {json_type(value)} is not of expected type number")
    return value


@registry.method("getblockcount")
def getblockcount(node: Node, params: list[Any]) -> object:
    return node.chain.height


@registry.method("getbestblockhash")
def getbestblockhash(node: Node, params: list[Any]) -> object:
    return node.chain.tip.hash


@registry.method("getblockhash", Arg("height", "number", required=True))
def getblockhash(node: Node, params: list[Any]) -> object:
    height = get_int(params[0], 0)
    if not 0 <= height <= node.chain.height:
        raise RpcError(RPC_INVALID_PARAMETER, "Block height out of range")
    return node.chain.active[height]


@registry.method("getblock", Arg("blockhash", "string", required=True), Arg("verbosity", "any"))
def getblock(node: Node, params: list[Any]) -> object:
    chain = node.chain
    block = find_block(node, params[0])
    verbosity = _verbosity(params[1], 1)
    if verbosity <= 0:
        return chain.block_hex(block)
    size = len(chain.block_hex(block)) // 2
    out = header_json(chain, block) | {"strippedsize": size, "size": size, "weight": size * 4}
    if verbosity == 1:
        out["tx"] = list(block.txids)
    else:
        out["tx"] = [decode_tx(chain, chain.txs[t]) | {"hex": chain.txs[t].hex} for t in block.txids]
    return out


@registry.method("getblockheader", Arg("blockhash", "string", required=True), Arg("verbose", "bool"))
def getblockheader(node: Node, params: list[Any]) -> object:
    block = find_block(node, params[0])
    return block.header.hex() if params[1] is False else header_json(node.chain, block)


@registry.method("getchaintips")
def getchaintips(node: Node, params: list[Any]) -> object:
    """Core's ``getchaintips``: every block without a child, and the active tip, with the length of
    its branch from the active chain (0 for the active tip)."""
    chain = node.chain
    tips = {h for h in chain.blocks if not chain.children.get(h)} | {chain.tip.hash}
    out = []
    for block in sorted((chain.blocks[h] for h in tips), key=lambda b: (-b.height, b.seq)):
        if chain.is_active(block.hash):
            status = "active"
        elif block.hash in chain.invalid:
            status = "invalid"
        else:
            status = "valid-fork"
        branch = block.height - chain.fork_point(block).height
        out.append({"height": block.height, "hash": block.hash, "branchlen": branch, "status": status})
    return out


@registry.method("getblockchaininfo")
def getblockchaininfo(node: Node, params: list[Any]) -> object:
    chain = node.chain
    # Core leaves initial block download (for good) once the tip is less than a day old
    node.left_ibd = node.left_ibd or chain.tip.time >= time.time() - MAX_TIP_AGE
    return {
        "chain": "regtest",
        "blocks": chain.height,
        "headers": chain.height,
        "bestblockhash": chain.tip.hash,
        "bits": f"{REGTEST_BITS:08x}",
        "target": REGTEST_TARGET,
        "difficulty": REGTEST_DIFFICULTY,
        "time": chain.tip.time,
        "mediantime": chain.median_time_past(chain.tip),
        "verificationprogress": 1,
        "initialblockdownload": not node.left_ibd,
        "chainwork": f"{2 * (chain.height + 1):064x}",
        "size_on_disk": sum(len(chain.block_hex(chain.blocks[h])) // 2 for h in chain.active),
        "pruned": False,
        "warnings": [],
    }


def mempool_entry(chain: Chain, txid: str) -> dict[str, object]:
    entry, tx = chain.mempool[txid], chain.txs[txid]
    ancestors = chain.mempool_relatives(txid, chain.mempool_parents)
    descendants = chain.mempool_relatives(txid, chain.mempool_children)
    return {
        "vsize": tx.vsize,
        "weight": tx.vsize * 4,
        "time": entry.time,
        "height": entry.height,
        "descendantcount": 1 + len(descendants),
        "descendantsize": tx.vsize + sum(chain.txs[t].vsize for t in descendants),
        "ancestorcount": 1 + len(ancestors),
        "ancestorsize": tx.vsize + sum(chain.txs[t].vsize for t in ancestors),
        "wtxid": txid,
        "fees": {
            "base": Btc(entry.fee),
            "modified": Btc(entry.fee),
            "ancestor": Btc(entry.fee + sum(chain.mempool[t].fee for t in ancestors)),
            "descendant": Btc(entry.fee + sum(chain.mempool[t].fee for t in descendants)),
        },
        "depends": chain.mempool_parents(txid),
        "spentby": chain.mempool_children(txid),
        "bip125-replaceable": tx.signals_rbf or any(chain.txs[t].signals_rbf for t in ancestors),
        "unbroadcast": False,
    }


@registry.method("getmempoolentry", Arg("txid", "string", required=True))
def getmempoolentry(node: Node, params: list[Any]) -> object:
    txid = parse_hash(params[0], "txid")
    if txid not in node.chain.mempool:
        raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
    return mempool_entry(node.chain, txid)


@registry.method("getrawmempool", Arg("verbose", "bool"), Arg("mempool_sequence", "bool"))
def getrawmempool(node: Node, params: list[Any]) -> object:
    if params[0]:
        return {txid: mempool_entry(node.chain, txid) for txid in node.chain.mempool}
    return list(node.chain.mempool)


@registry.method(
    "generatetoaddress",
    Arg("nblocks", "number", required=True),
    Arg("address", "string", required=True),
    Arg("maxtries", "number"),
    mutates=True,
    category="Generating",
)
def generatetoaddress(node: Node, params: list[Any]) -> object:
    count = get_int(params[0], 0)
    address = canonical_address(params[1], "regtest")
    if address is None:
        raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address")
    return node.chain.mine(max(count, 0), address)


@registry.method("invalidateblock", Arg("blockhash", "string", required=True), mutates=True)
def invalidateblock(node: Node, params: list[Any]) -> object:
    block = find_block(node, params[0])
    if block.height == 0:
        raise RpcError(RPC_MISC_ERROR, "Cannot invalidate the genesis block")
    node.chain.invalidate(block.hash)
    return None


@registry.method("reconsiderblock", Arg("blockhash", "string", required=True), mutates=True)
def reconsiderblock(node: Node, params: list[Any]) -> object:
    node.chain.reconsider(find_block(node, params[0]).hash)
    return None


@registry.method("validateaddress", Arg("address", "string", required=True), category="Util")
def validateaddress(node: Node, params: list[Any]) -> object:
    address = params[0]
    dest = decode_address(address, "regtest")
    if dest is None:
        return {"isvalid": False, "error_locations": [], "error": "Not a valid Bech32 or Base58 encoding"}
    out: dict[str, object] = {
        "isvalid": True,
        "address": canonical_address(address, "regtest"),
        "scriptPubKey": dest.script_pubkey.hex(),
        "isscript": dest.kind == "p2sh" or (dest.witver == 0 and len(dest.program) == 32),
        "iswitness": dest.kind == "witness",
    }
    if dest.kind == "witness":
        out |= {"witness_version": dest.witver, "witness_program": dest.program.hex()}
    return out


@registry.method("uptime", category="Control")
def uptime(node: Node, params: list[Any]) -> object:
    return int(time.monotonic() - node.started)


@registry.method("help", Arg("command", "string"), category="Control")
def help_(node: Node, params: list[Any]) -> object:
    if params[0] is not None:
        method = node.methods.get(params[0])
        return usage(method.name, method.args) if method else f"help: unknown command: {params[0]}"
    sections: dict[str, list[str]] = {}
    for method in sorted(node.methods.values(), key=lambda m: m.name):
        sections.setdefault(method.category, []).append(usage(method.name, method.args).strip())
    return "\n\n".join(f"== {name} ==\n" + "\n".join(lines) for name, lines in sorted(sections.items()))
