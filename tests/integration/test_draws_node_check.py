"""``satworks draw verify --node URL`` re-reads the beacon block hash from a (simulated) Bitcoin Core."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from satworks.cli import main
from satworks.draws import Beacon, ResolvedBeacon, build_proof, canonical_entries, commitment
from satworks.integrations.bitcoin.rpc import BitcoinRpc
from tests.integration.bitcoind_fixtures import BitcoindNode, running_bitcoind

REGTEST_GENESIS = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
PAIRS = [("alice", 3), ("bob", 5), ("carol", 2)]


@pytest.fixture
def node() -> Iterator[tuple[BitcoindNode, BitcoinRpc]]:
    with running_bitcoind() as running:
        rpc = BitcoinRpc(running.url, timeout_s=5)
        rpc.call("generatetoaddress", 5, rpc.call("getnewaddress"))
        yield running, rpc


def proof_file(tmp_path: Path, height: int, block_hash: str) -> str:
    entries = canonical_entries(PAIRS, k=2)
    beacon = ResolvedBeacon(network="regtest", height=height, block_hash=block_hash)
    committed = commitment(entries, k=2, beacon=Beacon(network="regtest", height=height), draw_id="d-1")
    proof = build_proof(draw_id="d-1", entries=entries, k=2, beacon=beacon, committed=committed)
    path = tmp_path / "proof.json"
    path.write_text(proof.model_dump_json())
    return str(path)


def verify_with_node(capsys: pytest.CaptureFixture[str], path: str, url: str) -> tuple[int, str, str]:
    code = main(["draw", "verify", path, "--node", url, "--timeout-s", "3"])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def test_the_node_agrees_with_a_genuine_beacon(
    node: tuple[BitcoindNode, BitcoinRpc], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running, rpc = node
    real = rpc.call("getblockhash", 3)
    code, out, err = verify_with_node(capsys, proof_file(tmp_path, 3, real), running.url)
    assert (code, err) == (0, "")
    assert out.startswith("match: ") and out.endswith("; the node agrees on the block hash")


def test_a_self_consistent_proof_with_another_block_is_a_mismatch(
    node: tuple[BitcoindNode, BitcoinRpc], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running, rpc = node
    real = rpc.call("getblockhash", 3)
    forged = "ab" * 32  # winners recomputed from this hash match, but it is not the block at height 3
    path = proof_file(tmp_path, 3, forged)
    assert main(["draw", "verify", path]) == 0  # without the node the proof looks fine
    capsys.readouterr()
    assert verify_with_node(capsys, path, running.url) == (
        1,
        f"mismatch: the node has {real} at height 3, the proof says {forged}",
        "",
    )


def test_a_beacon_above_the_tip_is_a_mismatch(
    node: tuple[BitcoindNode, BitcoinRpc], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running, _ = node
    code, out, _ = verify_with_node(capsys, proof_file(tmp_path, 500, "cd" * 32), running.url)
    assert (code, out) == (1, f"mismatch: the node has no block at height 500, the proof says {'cd' * 32}")


def test_a_node_that_is_down_means_exit_2_not_a_verdict(
    node: tuple[BitcoindNode, BitcoinRpc], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running, rpc = node
    path = proof_file(tmp_path, 3, rpc.call("getblockhash", 3))
    running.sim_stop()
    code, out, err = verify_with_node(capsys, path, running.url)
    running.sim_start()
    assert (code, out) == (2, "")
    assert err.startswith("error: cannot check the block hash with the node: bitcoind unreachable")


def test_get_block_hash_reads_the_best_chain(node: tuple[BitcoindNode, BitcoinRpc]) -> None:
    _, rpc = node
    assert rpc.get_block_hash(5) == rpc.call("getbestblockhash")
    assert rpc.get_block_hash(6) is None
    assert rpc.get_block_hash(0) == REGTEST_GENESIS
