"""The gRPC services of a simulated node: lnrpc.Lightning and routerrpc.Router on lnd's own protos.

Every call passes ``_admit`` first: exactly one macaroon that verifies (else UNAUTHENTICATED; lnd
answers some of these cases UNKNOWN with a macaroon message, which the client treats alike), then
any injected fault or delay, then expiry of due invoices. Handlers never await while they change
state, so each call is atomic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from satworks.devnodes.lnd.payments import intent_of
from satworks.devnodes.lnd.refusal import Refused
from satworks.integrations.lnd.protos import lightning_pb2, lightning_pb2_grpc, router_pb2, router_pb2_grpc

if TYPE_CHECKING:
    from satworks.devnodes.lnd.node import SimNode

Context = grpc.aio.ServicerContext[Any, Any]
VERSION = "0.19.0-beta satworks-sim"
BLOCK_HEIGHT = 101  # the simulator has no chain; a fixed, plausible height


async def _admit(node: SimNode, method: str, context: Context) -> None:
    macaroons = [str(value) for key, value in context.invocation_metadata() or () if key == "macaroon"]
    refusal = node.refuse_call(method, macaroons)
    if refusal is not None:
        await _abort(context, refusal)
    delay = node.faults.delay_of(method)
    if delay:
        await asyncio.sleep(delay)
    node.now()


async def _abort(context: Context, refusal: Refused) -> None:
    await context.abort(refusal.code, refusal.message)


def _hash_of(raw: bytes) -> bytes:
    if len(raw) != 32:
        raise Refused(grpc.StatusCode.UNKNOWN, f"payment hash must be exactly 32 bytes, is instead {len(raw)}")
    return raw


class LightningService(lightning_pb2_grpc.LightningServicer):
    def __init__(self, node: SimNode) -> None:
        self.node = node

    async def GetInfo(self, request: lightning_pb2.GetInfoRequest, context: Context) -> lightning_pb2.GetInfoResponse:
        await _admit(self.node, "GetInfo", context)
        peers = len(self.node.network.nodes) - 1
        return lightning_pb2.GetInfoResponse(
            version=VERSION,
            identity_pubkey=self.node.pubkey.hex(),
            alias=self.node.config.alias,
            num_active_channels=peers,
            num_peers=peers,
            block_height=BLOCK_HEIGHT,
            synced_to_chain=True,
            synced_to_graph=True,
            chains=[lightning_pb2.Chain(network=self.node.config.network)],
            uris=[f"{self.node.pubkey.hex()}@127.0.0.1:9735"],
        )

    async def AddInvoice(self, request: lightning_pb2.Invoice, context: Context) -> lightning_pb2.AddInvoiceResponse:
        await _admit(self.node, "AddInvoice", context)
        try:
            invoice = self.node.add_invoice(request)
        except Refused as refusal:
            await _abort(context, refusal)
            raise
        return lightning_pb2.AddInvoiceResponse(
            r_hash=invoice.payment_hash,
            payment_request=invoice.payment_request,
            add_index=invoice.add_index,
            payment_addr=invoice.payment_addr,
        )

    async def LookupInvoice(self, request: lightning_pb2.PaymentHash, context: Context) -> lightning_pb2.Invoice:
        await _admit(self.node, "LookupInvoice", context)
        try:
            invoice = self.node.invoices.get(_hash_of(request.r_hash))
        except Refused as refusal:
            await _abort(context, refusal)
            raise
        if invoice is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unable to locate invoice")
        assert invoice is not None
        return invoice.to_proto()

    async def ListInvoices(
        self, request: lightning_pb2.ListInvoiceRequest, context: Context
    ) -> lightning_pb2.ListInvoiceResponse:
        await _admit(self.node, "ListInvoices", context)
        start, end = request.creation_date_start, request.creation_date_end
        if start and end and start >= end:
            await context.abort(grpc.StatusCode.UNKNOWN, f"start date({start}) must be before end date({end})")
        found = self.node.invoices.query(
            request.index_offset,
            request.num_max_invoices or 100,  # lnd's default page
            pending_only=request.pending_only,
            reverse=request.reversed,
            created_from=start,
            created_to=end,
        )
        return lightning_pb2.ListInvoiceResponse(
            invoices=[invoice.to_proto() for invoice in found],
            first_index_offset=found[0].add_index if found else 0,
            last_index_offset=found[-1].add_index if found else 0,
        )

    async def SubscribeInvoices(
        self, request: lightning_pb2.InvoiceSubscription, context: Context
    ) -> AsyncIterator[lightning_pb2.Invoice]:
        await _admit(self.node, "SubscribeInvoices", context)
        subscriber = self.node.invoices.subscribe(request.add_index, request.settle_index)
        try:
            while True:
                yield await subscriber.queue.get()
        finally:
            self.node.invoices.unsubscribe(subscriber)


class RouterService(router_pb2_grpc.RouterServicer):
    def __init__(self, node: SimNode) -> None:
        self.node = node

    async def SendPaymentV2(
        self, request: router_pb2.SendPaymentRequest, context: Context
    ) -> AsyncIterator[lightning_pb2.Payment]:
        await _admit(self.node, "SendPaymentV2", context)
        try:
            intent = intent_of(request, network=self.node.hrp_network, now=self.node.now())
            payment = self.node.send_payment(intent)
        except Refused as refusal:
            await _abort(context, refusal)
            raise
        async for update in self._follow(payment.payment_hash, inflight=not request.no_inflight_updates):
            yield update

    async def TrackPaymentV2(
        self, request: router_pb2.TrackPaymentRequest, context: Context
    ) -> AsyncIterator[lightning_pb2.Payment]:
        await _admit(self.node, "TrackPaymentV2", context)
        if len(request.payment_hash) != 32 or self.node.payments.get(request.payment_hash) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "payment isn't initiated")
        async for update in self._follow(request.payment_hash, inflight=not request.no_inflight_updates):
            yield update

    async def _follow(self, payment_hash: bytes, *, inflight: bool) -> AsyncIterator[lightning_pb2.Payment]:
        """The payment's updates until its final one (only that one unless ``inflight``)."""
        queue = self.node.payments.watch(payment_hash)
        try:
            while True:
                update = await queue.get()
                final = update.status in (lightning_pb2.Payment.SUCCEEDED, lightning_pb2.Payment.FAILED)
                if final or inflight:
                    yield update
                if final:
                    return
        finally:
            self.node.payments.unwatch(payment_hash, queue)
