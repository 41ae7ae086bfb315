"""A typed lnd client on grpcio: TLS with the node's certificate, the macaroon on every call.

One ``grpc`` channel per client; it is thread-safe, reconnects by itself and can be shared by all
threads of a worker. Every unary call has a deadline (``timeout_s``); payment streams get the
payment's own timeout on top. ``subscribe_invoices`` is open-ended by default: a dead connection
is noticed by keepalive pings (about ``KEEPALIVE_S`` + ``KEEPALIVE_TIMEOUT_S``), then the stream
raises ``NodeUnavailable`` and the caller resumes it from the indices it stored.

Retries: only the idempotent reads (GetInfo, LookupInvoice, ListInvoices) are retried here, by
gRPC's own retry policy (``READ_RETRY_POLICY``: at most 3 attempts, jittered exponential backoff
from 0.1 s, within the call's one deadline) and only on UNAVAILABLE and RESOURCE_EXHAUSTED: a
blip or a restart is then absorbed without a job retry. AddInvoice and SendPaymentV2 are never
retried here: an answer lost after lnd acted would create a second invoice or try a second
payment. Everything else — and all retries beyond these few — comes from the caller's backoff
(Dramatiq), which sees ``NodeUnavailable``.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc

from satworks.errors import InvalidPayload
from satworks.integrations.lnd.errors import LndConfigError, LndError
from satworks.integrations.lnd.messages import invoice_from_proto, payment_from_proto
from satworks.integrations.lnd.protos import lightning_pb2, lightning_pb2_grpc, router_pb2, router_pb2_grpc
from satworks.integrations.lnd.records import CreatedInvoice, InvoicePage, LndInvoice, LndPayment, NodeInfo
from satworks.integrations.lnd.rpc_errors import rpc_errors
from satworks.integrations.lnd.stream import Stream

KEEPALIVE_S = 30  # lnd permits client pings every 5 s or more
KEEPALIVE_TIMEOUT_S = 10
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # ListInvoices answers can be large
MAX_RECONNECT_BACKOFF_S = 10  # gRPC's default (120 s) would leave a restarted node unused for minutes
DEFAULT_PAYMENT_TIMEOUT_S = 60  # lnd's own default for SendPaymentV2
READ_RETRY_POLICY = {
    "maxAttempts": 3,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
}
_READS = ("GetInfo", "LookupInvoice", "ListInvoices")


class _Macaroon(grpc.AuthMetadataPlugin):
    """Adds ``macaroon: <hex>`` to every call's metadata, as lncli does."""

    def __init__(self, macaroon_hex: str) -> None:
        self._metadata = (("macaroon", macaroon_hex),)

    def __call__(self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
        callback(self._metadata, None)


class LndClient:
    def __init__(
        self,
        target: str,
        *,
        tls_cert_path: str | Path,
        macaroon_path: str | Path | None = None,
        macaroon_hex: str | None = None,
        timeout_s: float,
    ) -> None:
        """Connect lazily to ``target`` (``host:port``) trusting the certificate at ``tls_cert_path``.

        The macaroon is read from ``macaroon_path`` (lnd's binary file) or given as ``macaroon_hex``.
        Raises ``LndConfigError`` if a file cannot be read or the macaroon is not hex.
        """
        if (macaroon_path is None) == (macaroon_hex is None):
            raise LndConfigError("give exactly one of macaroon_path and macaroon_hex")
        cert = _read(tls_cert_path, "TLS certificate")
        if macaroon_path is not None:
            macaroon_hex = _read(macaroon_path, "macaroon").hex()
        assert macaroon_hex is not None
        try:
            bytes.fromhex(macaroon_hex)
        except ValueError:
            raise LndConfigError("the macaroon is not hex") from None
        self.target = target
        self._timeout_s = timeout_s
        credentials = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials(root_certificates=cert),
            grpc.metadata_call_credentials(_Macaroon(macaroon_hex), name="macaroon"),
        )
        service_config = {
            "methodConfig": [
                {
                    "name": [{"service": "lnrpc.Lightning", "method": m} for m in _READS],
                    "retryPolicy": READ_RETRY_POLICY,
                }
            ]
        }
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", KEEPALIVE_S * 1000),
            ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_S * 1000),
            ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_S * 1000),
            ("grpc.enable_retries", 1),
            ("grpc.service_config", json.dumps(service_config)),
        ]
        self._channel = grpc.secure_channel(target, credentials, options=options)
        self._lightning = lightning_pb2_grpc.LightningStub(self._channel)
        self._router = router_pb2_grpc.RouterStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> LndClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the merchant's side

    def get_info(self) -> NodeInfo:
        with rpc_errors("GetInfo"):
            reply = self._lightning.GetInfo(lightning_pb2.GetInfoRequest(), timeout=self._timeout_s)
        return NodeInfo(
            identity_pubkey=reply.identity_pubkey,
            alias=reply.alias,
            version=reply.version,
            network=reply.chains[0].network if reply.chains else None,
            block_height=reply.block_height,
            synced_to_chain=reply.synced_to_chain,
            num_active_channels=reply.num_active_channels,
            num_peers=reply.num_peers,
        )

    def add_invoice(
        self,
        value_sat: int | None = None,
        *,
        value_msat: int | None = None,
        memo: str = "",
        expiry_s: int | None = None,
        preimage: bytes | None = None,
    ) -> CreatedInvoice:
        """Create an invoice for ``value_sat`` or ``value_msat`` (neither: the payer picks the amount).

        ``expiry_s`` defaults to lnd's 86400. A caller-chosen 32-byte ``preimage`` makes creation
        idempotent: a second call raises ``LndAlreadyExists`` instead of making a second invoice.
        """
        if value_sat is not None and value_msat is not None:
            raise ValueError("give value_sat or value_msat, not both")
        request = lightning_pb2.Invoice(
            memo=memo,
            value=value_sat or 0,
            value_msat=value_msat or 0,
            expiry=expiry_s or 0,
            r_preimage=preimage or b"",
        )
        with rpc_errors("AddInvoice"):
            reply = self._lightning.AddInvoice(request, timeout=self._timeout_s)
        return CreatedInvoice(
            payment_hash=reply.r_hash.hex(),
            payment_request=reply.payment_request,
            add_index=reply.add_index,
            payment_addr=reply.payment_addr.hex(),
        )

    def lookup_invoice(self, payment_hash: str | bytes) -> LndInvoice:
        """The invoice now; raises ``LndNotFound`` if the node has none with this hash."""
        request = lightning_pb2.PaymentHash(r_hash=_hash_bytes(payment_hash))
        with rpc_errors("LookupInvoice"):
            reply = self._lightning.LookupInvoice(request, timeout=self._timeout_s)
        return invoice_from_proto(reply)

    def list_invoices(
        self, index_offset: int = 0, max_invoices: int = 100, *, pending_only: bool = False, reverse: bool = False
    ) -> InvoicePage:
        """Invoices with ``add_index > index_offset`` (``< index_offset`` when ``reverse``), ascending."""
        request = lightning_pb2.ListInvoiceRequest(
            index_offset=index_offset, num_max_invoices=max_invoices, pending_only=pending_only, reversed=reverse
        )
        with rpc_errors("ListInvoices"):
            reply = self._lightning.ListInvoices(request, timeout=self._timeout_s)
        return InvoicePage(
            invoices=tuple(invoice_from_proto(i) for i in reply.invoices),
            first_index_offset=reply.first_index_offset,
            last_index_offset=reply.last_index_offset,
        )

    def subscribe_invoices(
        self, add_index: int = 0, settle_index: int = 0, *, timeout_s: float | None = None
    ) -> Stream[LndInvoice]:
        """Invoice updates: first the ones after the given indices, then live ones.

        lnd's rules: an index of 0 replays nothing; the replay sends invoices added after
        ``add_index`` in their *current* state, then those settled after ``settle_index`` (an
        invoice can come twice); live updates are additions (OPEN) and settlements only —
        cancellations, expiries and held (ACCEPTED) invoices are never pushed, so poll for them.
        """
        request = lightning_pb2.InvoiceSubscription(add_index=add_index, settle_index=settle_index)
        with rpc_errors("SubscribeInvoices"):
            call = self._lightning.SubscribeInvoices(request, timeout=timeout_s)
        return Stream(call, "SubscribeInvoices", _invoice, ends_normally=False)

    # ---- the payer's side (tests, operations)

    def send_payment_v2(
        self,
        payment_request: str = "",
        *,
        dest: str | bytes = b"",
        amt_msat: int = 0,
        payment_hash: str | bytes = b"",
        payment_addr: str | bytes = b"",
        timeout_s: int = DEFAULT_PAYMENT_TIMEOUT_S,
        fee_limit_msat: int = 0,
        no_inflight_updates: bool = False,
    ) -> Stream[LndPayment]:
        """Pay a BOLT11 ``payment_request`` (``amt_msat`` only for a zero-amount one), or pay
        ``dest`` + ``amt_msat`` + ``payment_hash`` (+ ``payment_addr``) without one. Yields lnd's
        Payment updates until the final SUCCEEDED or FAILED one."""
        request = router_pb2.SendPaymentRequest(
            payment_request=payment_request,
            dest=_hex_bytes(dest),
            amt_msat=amt_msat,
            payment_hash=_hex_bytes(payment_hash),
            payment_addr=_hex_bytes(payment_addr),
            timeout_seconds=timeout_s,
            fee_limit_msat=fee_limit_msat,
            no_inflight_updates=no_inflight_updates,
        )
        with rpc_errors("SendPaymentV2"):
            call = self._router.SendPaymentV2(request, timeout=timeout_s + self._timeout_s)
        return Stream(call, "SendPaymentV2", _payment, ends_normally=True)

    def pay(
        self,
        payment_request: str,
        *,
        amt_msat: int = 0,
        timeout_s: int = DEFAULT_PAYMENT_TIMEOUT_S,
        fee_limit_msat: int = 0,
    ) -> LndPayment:
        """``send_payment_v2`` to the end: the final update (SUCCEEDED or FAILED)."""
        last: LndPayment | None = None
        stream = self.send_payment_v2(
            payment_request, amt_msat=amt_msat, timeout_s=timeout_s, fee_limit_msat=fee_limit_msat
        )
        with stream as updates:
            for last in updates:  # noqa: B007 - the last one is the answer
                pass
        if last is None or not last.status.final:
            raise LndError(f"lnd SendPaymentV2 ended without a final status (last: {last})")
        return last

    def track_payment_v2(
        self, payment_hash: str | bytes, *, timeout_s: int = DEFAULT_PAYMENT_TIMEOUT_S
    ) -> Stream[LndPayment]:
        """Updates of an outgoing payment until final; ``LndNotFound`` if this node never sent it."""
        request = router_pb2.TrackPaymentRequest(payment_hash=_hash_bytes(payment_hash))
        with rpc_errors("TrackPaymentV2"):
            call = self._router.TrackPaymentV2(request, timeout=timeout_s + self._timeout_s)
        return Stream(call, "TrackPaymentV2", _payment, ends_normally=True)


def _invoice(message: object) -> LndInvoice:
    assert isinstance(message, lightning_pb2.Invoice)
    return invoice_from_proto(message)


def _payment(message: object) -> LndPayment:
    assert isinstance(message, lightning_pb2.Payment)
    return payment_from_proto(message)


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise LndConfigError(f"cannot read the lnd {what} at {path}: {exc.strerror}") from exc


def _hex_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise InvalidPayload(f"not hex: {value!r}") from None


def _hash_bytes(payment_hash: str | bytes) -> bytes:
    raw = _hex_bytes(payment_hash)
    if len(raw) != 32:
        raise InvalidPayload(f"a payment hash is 32 bytes, not {len(raw)}")
    return raw
