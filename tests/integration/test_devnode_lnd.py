"""The lnd simulator as a real lnd is used: its files, BOLT11 strings, raw gRPC, restarts and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import bolt11
import grpc
import pytest

from satworks.integrations.lnd.errors import LndError
from satworks.integrations.lnd.protos import lightning_pb2, lightning_pb2_grpc
from satworks.integrations.lnd.records import InvoiceState
from tests.integration.lnd_fixtures import LndNetwork, lnd_network, running_lnd
from tests.support import ROOT, wait_until

__all__ = ["lnd_network"]


def test_payment_requests_decode_with_an_independent_bolt11_library(lnd_network: LndNetwork) -> None:
    merchant = lnd_network.client("merchant")
    created = merchant.add_invoice(12_345, memo="raffle ticket ☘", expiry_s=1_800)
    invoice = merchant.lookup_invoice(created.payment_hash)

    decoded = bolt11.decode(created.payment_request)  # checks the bech32 checksum and the signature
    assert created.payment_request.startswith("lnbcrt123450n1")
    assert decoded.currency == "bcrt"
    assert decoded.amount_msat == 12_345_000
    assert decoded.payment_hash == created.payment_hash
    assert decoded.payment_secret == created.payment_addr
    assert decoded.description == "raffle ticket ☘"
    assert decoded.expiry == 1_800 and decoded.date == int(invoice.created_at.timestamp())
    assert decoded.min_final_cltv_expiry == 80
    assert decoded.payee == merchant.get_info().identity_pubkey  # recovered from the signature
    features = {f.name: s.name for f, s in decoded.features.feature_list.items()}
    assert features["var_onion_optin"] == features["payment_secret"] == "required"

    zero = bolt11.decode(merchant.add_invoice(memo="any amount").payment_request)
    assert zero.amount_msat is None and zero.payee == decoded.payee


def test_a_tampered_payment_request_is_rejected(lnd_network: LndNetwork) -> None:
    request = lnd_network.client("merchant").add_invoice(1).payment_request
    flipped = request[:40] + ("q" if request[40] != "q" else "p") + request[41:]
    with pytest.raises(bolt11.exceptions.Bolt11Exception):
        bolt11.decode(flipped)
    payer = lnd_network.client("payer")
    with pytest.raises(LndError, match="checksum"):
        payer.pay(flipped)


def test_calls_without_a_macaroon_are_unauthenticated(lnd_network: LndNetwork) -> None:
    node = lnd_network.node("merchant")
    credentials = grpc.ssl_channel_credentials(node.files.tls_cert.read_bytes())
    with grpc.secure_channel(lnd_network.target("merchant"), credentials) as channel:
        stub = lightning_pb2_grpc.LightningStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.GetInfo(lightning_pb2.GetInfoRequest(), timeout=5)
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert info.value.details() == "expected 1 macaroon, got 0"
        reply = stub.GetInfo(
            lightning_pb2.GetInfoRequest(), metadata=[("macaroon", node.files.macaroon.read_bytes().hex())], timeout=5
        )
        assert reply.identity_pubkey == node.pubkey.hex()


class _WatchedStream:
    """A ``SubscribeInvoices`` stream on a channel of its own that sends keepalive pings every
    ``keepalive_ms`` (without grpcio's own cap on pings between data frames, as a Go client), read
    by a thread that records the invoices it gets and the error that ends it."""

    def __init__(self, lnd_network: LndNetwork, keepalive_ms: int) -> None:
        node = lnd_network.node("merchant")
        options = [
            ("grpc.keepalive_time_ms", keepalive_ms),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.http2.max_pings_without_data", 0),
        ]
        credentials = grpc.ssl_channel_credentials(node.files.tls_cert.read_bytes())
        self.channel = grpc.secure_channel(lnd_network.target("merchant"), credentials, options=options)
        macaroon = [("macaroon", node.files.macaroon.read_bytes().hex())]
        self.call = lightning_pb2_grpc.LightningStub(self.channel).SubscribeInvoices(
            lightning_pb2.InvoiceSubscription(), metadata=macaroon
        )
        self.memos: list[str] = []
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for invoice in self.call:
                self.memos.append(invoice.memo)
        except grpc.RpcError as exc:
            self.error = exc

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(timeout=5)
        self.channel.close()


def test_keepalive_pings_on_an_invoice_stream_follow_lnds_policy(lnd_network: LndNetwork) -> None:
    """lnd accepts a client's pings every 5 s or more on an open stream and sends ``GOAWAY
    too_many_pings`` after the third ping that comes sooner (lnd's ``ClientPingMinWait``)."""
    polite = _WatchedStream(lnd_network, keepalive_ms=5_500)
    eager = _WatchedStream(lnd_network, keepalive_ms=1_000)
    try:
        wait_until(lambda: eager.error, timeout_s=15, what="the eager client's stream refused")
        assert eager.error is not None and eager.error.code() is grpc.StatusCode.UNAVAILABLE
        assert eager.error.details() == "Too many pings"

        # Five polite pings (27.5 s): the 5 min grpcio default in place of lnd's 5 s refused the fourth.
        started = time.monotonic()
        wait_until(lambda: time.monotonic() - started > 28 or polite.error, timeout_s=40, what="five pings")
        assert polite.error is None
        lnd_network.client("merchant").add_invoice(1_000, memo="after the pings")
        wait_until(lambda: "after the pings" in polite.memos, what="the invoice on the polite stream")
    finally:
        polite.close()
        eager.close()


def test_a_node_writes_lnd_like_files_and_keeps_its_identity_and_state_across_processes(tmp_path: Path) -> None:
    with running_lnd(tmp_path) as lnd:
        merchant, payer = lnd.client("merchant"), lnd.client("payer")
        paid = merchant.add_invoice(100, memo="paid")
        payer.pay(paid.payment_request)
        still_open = merchant.add_invoice(200, memo="open")
        pubkey, cert = lnd.node("merchant").pubkey, lnd.node("merchant").files.tls_cert.read_bytes()
        files = lnd.node("merchant").files
        assert cert.startswith(b"-----BEGIN CERTIFICATE-----")
        assert files.macaroon.read_bytes()[:1] == b"\x02"  # a binary v2 macaroon, as lnd writes it
        assert oct(files.tls_key.stat().st_mode & 0o777) == "0o600"
        info = json.loads(files.info.read_text())
        assert info["identity_pubkey"] == pubkey.hex() and info["rpcserver"] == lnd.target("merchant")

    with running_lnd(tmp_path) as lnd:  # a new process would do exactly this
        assert lnd.node("merchant").pubkey == pubkey
        assert lnd.node("merchant").files.tls_cert.read_bytes() == cert
        merchant = lnd.client("merchant")
        assert merchant.lookup_invoice(paid.payment_hash).state is InvoiceState.SETTLED
        assert merchant.lookup_invoice(still_open.payment_hash).state is InvoiceState.OPEN
        assert merchant.add_invoice(300).add_index == 3
        assert next(lnd.client("payer").track_payment_v2(paid.payment_hash)).status == "SUCCEEDED"
        with merchant.subscribe_invoices(add_index=1, settle_index=0, timeout_s=10) as stream:
            assert [next(stream).memo, next(stream).add_index] == ["open", 3]


def _satworks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "satworks.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_the_devnode_command_runs_two_nodes_and_its_pay_helper_settles_an_invoice(tmp_path: Path) -> None:
    datadir = tmp_path / "lnd"
    server = subprocess.Popen(
        [sys.executable, "-m", "satworks.cli", "devnode", "lnd", "--datadir", str(datadir), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        infos = {
            alias: wait_until(lambda a=alias: _node_info(datadir / a), timeout_s=30, what=f"{alias}'s node.json")
            for alias in ("merchant", "payer")
        }
        assert infos["merchant"]["rpcserver"] != infos["payer"]["rpcserver"]
        from satworks.integrations.lnd.client import LndClient

        m = infos["merchant"]
        with LndClient(
            m["rpcserver"], tls_cert_path=m["tlscertpath"], macaroon_path=m["macaroonpath"], timeout_s=5
        ) as merchant:
            created = merchant.add_invoice(777, memo="walkthrough")

            paid = _satworks("devnode", "lnd", "pay", "--datadir", str(datadir), created.payment_request)
            assert paid.returncode == 0, paid.stderr
            result = json.loads(paid.stdout)
            assert result["status"] == "SUCCEEDED" and result["value_msat"] == 777_000
            assert merchant.lookup_invoice(created.payment_hash).state is InvoiceState.SETTLED

            again = _satworks("devnode", "lnd", "pay", "--datadir", str(datadir), created.payment_request)
            assert again.returncode == 1 and "invoice is already paid" in again.stderr
            assert "Traceback" not in again.stderr
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        assert server.wait(timeout=15) == 0

    missing = _satworks("devnode", "lnd", "pay", "--datadir", str(tmp_path / "none"), "lnbcrt1x")
    assert missing.returncode == 1 and "is `satworks devnode lnd` running?" in missing.stderr
    bad = _satworks("devnode", "lnd", "--nodes", "Merchant/..", "--datadir", str(datadir))
    assert bad.returncode == 2 and "--nodes" in bad.stderr


def _node_info(node_dir: Path) -> dict[str, str] | None:
    try:
        return dict(json.loads((node_dir / "node.json").read_text()))
    except (OSError, ValueError):
        return None
