"""A simulated lnd node and the network it pays through.

``Network`` stands for a Lightning network in which every node has a direct, fee-free channel to
every other: a payment reaches its payee at once (or after ``htlc_delay_s``), or fails with
NO_ROUTE if the payee is unknown or not serving, INSUFFICIENT_BALANCE beyond the payer's balance,
and INCORRECT_PAYMENT_DETAILS when the payee refuses the HTLC. All nodes of a network live on
one event loop; ``start``/``stop`` open and close a node's gRPC port while its state stays (in
memory and in its data directory's journal, so a restarted process keeps it too).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import grpc

from satworks import clock
from satworks.devnodes.lnd import bolt11
from satworks.devnodes.lnd.credentials import MacaroonAuthority, NodeFiles, ensure_identity, ensure_tls
from satworks.devnodes.lnd.invoices import Invoice, InvoiceRegistry
from satworks.devnodes.lnd.journal import Journal
from satworks.devnodes.lnd.payments import Payment, PaymentIntent, PaymentStore, Reason
from satworks.devnodes.lnd.refusal import Refused, unknown
from satworks.devnodes.lnd.services import LightningService, RouterService
from satworks.integrations.lnd.protos import lightning_pb2, lightning_pb2_grpc, router_pb2_grpc

log = logging.getLogger("satworks.devnodes.lnd")

HRP_NETWORK = {"regtest": "bcrt", "testnet": "tb", "signet": "tbs", "mainnet": "bc"}
DEFAULT_EXPIRY_S = 86_400  # lnd's default invoice expiry
MAX_EXPIRY_S = 365 * 86_400
DEFAULT_CLTV_EXPIRY = 80  # lnd's default time-lock delta for bitcoin
MAX_MEMO_BYTES = 1024
MAX_INVOICE_MSAT = 100_000 * 10**11  # lnd's cap: 100k BTC
PING_POLICY = [
    # lnd's gRPC keepalive defaults (its config.go): a client may ping every 5 s (``ClientPingMinWait``)
    # while it has a call open, and not at all without one (``ClientAllowPingWithoutStream`` false);
    # the server pings a client that has been quiet for 1 min and waits 20 s for the answer. grpcio's
    # server reads the first as ``min_ping_interval_without_data_ms``; its default is 5 min, which sends
    # ``GOAWAY too_many_pings`` to a client that lnd itself would accept.
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
]


@dataclass(frozen=True)
class NodeConfig:
    alias: str
    datadir: Path  # the node's own directory: tls.cert, admin.macaroon, node.json, journal
    network: str = "regtest"
    balance_sat: int = 100_000_000  # what it can send in total, before what it receives
    htlc_delay_s: float = 0.0  # how long a payment stays IN_FLIGHT


class Faults:
    """Test hooks: fail a method's next calls with a status, or make it answer late."""

    def __init__(self) -> None:
        self._failures: dict[str, list[Refused]] = {}
        self._delays: dict[str, float] = {}

    def fail_next(self, method: str, code: grpc.StatusCode, times: int = 1, message: str = "") -> None:
        refusal = Refused(code, message or f"injected failure of {method}")
        self._failures.setdefault(method, []).extend([refusal] * times)

    def delay(self, method: str, seconds: float) -> None:
        """Answer ``method`` ``seconds`` late (0 clears)."""
        self._delays[method] = seconds

    def take_failure(self, method: str) -> Refused | None:
        pending = self._failures.get(method)
        return pending.pop(0) if pending else None

    def delay_of(self, method: str) -> float:
        return self._delays.get(method, 0.0)


class Network:
    def __init__(self) -> None:
        self.nodes: dict[bytes, SimNode] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def join(self, node: SimNode) -> None:
        self.nodes[node.pubkey] = node

    def send(self, payer: SimNode, payment: Payment, intent: PaymentIntent) -> None:
        """Route ``payment`` in the background: it completes even if the caller's stream goes away."""
        task = asyncio.get_running_loop().create_task(self._route(payer, payment, intent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _route(self, payer: SimNode, payment: Payment, intent: PaymentIntent) -> None:
        await asyncio.sleep(payer.config.htlc_delay_s)
        payee = self.nodes.get(intent.dest)
        if payee is None or not payee.serving or (payee is payer and not intent.allow_self_payment):
            payer.payments.fail(payment, Reason.FAILURE_REASON_NO_ROUTE)
        elif intent.amt_msat > payer.balance_msat:
            payer.payments.fail(payment, Reason.FAILURE_REASON_INSUFFICIENT_BALANCE)
        else:
            now = clock.utcnow().timestamp()
            preimage = payee.invoices.settle_htlc(intent.payment_hash, intent.amt_msat, intent.payment_addr, now)
            if preimage is None:
                payer.payments.fail(payment, Reason.FAILURE_REASON_INCORRECT_PAYMENT_DETAILS)
            else:
                payer.payments.succeed(payment, preimage)
        status = lightning_pb2.Payment.PaymentStatus.Name(payment.to_proto().status)
        log.info("payment done", extra={"action": "lnd_sim_payment", "node": payer.config.alias, "status": status})


class SimNode:
    def __init__(self, config: NodeConfig, network: Network) -> None:
        self.config = config
        self.network = network
        self.files = NodeFiles(config.datadir)
        self.cert_pem, self._key_pem = ensure_tls(self.files)
        self.identity = ensure_identity(self.files)
        self.pubkey: bytes = self.identity.public_key.format()
        self.macaroons = MacaroonAuthority(self.files)
        self.faults = Faults()
        self._journal = Journal(self.files.journal)
        self.invoices = InvoiceRegistry(self._journal)
        self.payments = PaymentStore(self._journal)
        for doc in self._journal.replay():
            (self.invoices if doc["kind"] == "invoice" else self.payments).restore(doc)
        self._server: grpc.aio.Server | None = None
        self.port: int | None = None
        network.join(self)

    @property
    def hrp_network(self) -> str:
        """The network's part of BOLT11 prefixes: ``bcrt`` for regtest."""
        return HRP_NETWORK[self.config.network]

    @property
    def serving(self) -> bool:
        return self._server is not None

    @property
    def balance_msat(self) -> int:
        return self.config.balance_sat * 1000 + self.invoices.received_msat - self.payments.sent_msat

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve gRPC over TLS on ``host:port`` (0: a free port, kept for later restarts); the bound port."""
        if self._server is not None:
            raise RuntimeError("already serving")
        server = grpc.aio.server(options=PING_POLICY)
        lightning_pb2_grpc.add_LightningServicer_to_server(LightningService(self), server)
        router_pb2_grpc.add_RouterServicer_to_server(RouterService(self), server)
        address = f"[{host}]:{port or self.port or 0}" if ":" in host else f"{host}:{port or self.port or 0}"
        credentials = grpc.ssl_server_credentials([(self._key_pem, self.cert_pem)])
        self.port = server.add_secure_port(address, credentials)
        await server.start()
        self._server = server
        self.files.write_info(
            alias=self.config.alias, rpcserver=f"{host}:{self.port}", identity_pubkey=self.pubkey.hex()
        )
        log.info("lnd simulator listening", extra={"action": "lnd_sim_start", "node": self.config.alias})
        return self.port

    async def stop(self) -> None:
        """Close the port and cancel open calls (clients see UNAVAILABLE); the state stays."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(grace=None)

    def close(self) -> None:
        self._journal.close()

    def now(self) -> float:
        """Unix seconds from the one clock (tests move it); also cancels invoices that expired."""
        now = clock.utcnow().timestamp()
        self.invoices.expire_due(now)
        return now

    def add_invoice(self, request: lightning_pb2.Invoice) -> Invoice:
        """lnd's AddInvoice checks, then a signed BOLT11 request; raises ``Refused``."""
        if request.value and request.value_msat:
            raise unknown("sat and msat arguments are mutually exclusive")
        if request.value < 0 or request.value_msat < 0:
            raise unknown("amount cannot be negative")
        value_msat = request.value * 1000 or request.value_msat
        if value_msat > MAX_INVOICE_MSAT:
            raise unknown(f"invoice amount {value_msat // 1000} is too large, max is {MAX_INVOICE_MSAT // 1000}")
        memo_bytes = len(request.memo.encode())
        if memo_bytes > MAX_MEMO_BYTES:
            raise unknown(f"memo too large: {memo_bytes} bytes (maxsize={MAX_MEMO_BYTES})")
        if request.expiry > MAX_EXPIRY_S:
            raise unknown(f"expiry of {request.expiry} seconds greater than max expiry of {MAX_EXPIRY_S} seconds")
        if request.r_preimage and len(request.r_preimage) != 32:
            raise unknown(f"invalid preimage length of {len(request.r_preimage)}, want 32")
        preimage = request.r_preimage or secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).digest()
        if self.invoices.get(payment_hash) is not None:
            raise unknown("invoice with payment hash already exists")
        created = int(self.now())
        expiry_s = request.expiry if request.expiry > 0 else DEFAULT_EXPIRY_S
        cltv_expiry = request.cltv_expiry or DEFAULT_CLTV_EXPIRY
        payment_addr = secrets.token_bytes(32)
        try:
            payment_request = bolt11.encode(
                self.identity,
                network=self.hrp_network,
                amount_msat=value_msat or None,
                timestamp=created,
                payment_hash=payment_hash,
                payment_secret=payment_addr,
                description=request.memo,
                expiry_s=expiry_s,
                min_final_cltv=cltv_expiry,
            )
        except bolt11.InvalidPaymentRequest as exc:
            raise unknown(str(exc)) from None
        invoice = Invoice(
            payment_hash=payment_hash,
            preimage=preimage,
            payment_addr=payment_addr,
            memo=request.memo,
            value_msat=value_msat,
            creation_date=created,
            expiry_s=expiry_s,
            cltv_expiry=cltv_expiry,
            payment_request=payment_request,
        )
        return self.invoices.add(invoice)

    def send_payment(self, intent: PaymentIntent) -> Payment:
        """Start paying ``intent`` (the payment completes in the background); raises ``Refused``."""
        payment = self.payments.begin(intent, int(self.now() * 1_000_000) * 1000)
        self.network.send(self, payment, intent)
        return payment

    def refuse_call(self, method: str, macaroon_hex: list[str]) -> Refused | None:
        """Why a call must be refused (bad macaroon, injected fault), or None to let it in."""
        if len(macaroon_hex) != 1:
            return Refused(grpc.StatusCode.UNAUTHENTICATED, f"expected 1 macaroon, got {len(macaroon_hex)}")
        reason = self.macaroons.check(macaroon_hex[0])
        if reason is not None:
            return Refused(grpc.StatusCode.UNAUTHENTICATED, reason)
        return self.faults.take_failure(method)
