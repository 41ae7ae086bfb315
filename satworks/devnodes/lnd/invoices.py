"""The merchant's side: invoices, their add/settle indices, expiry and subscribers, with lnd's rules.

- ``add_index`` counts every invoice, ``settle_index`` every settlement, both from 1.
- An open invoice is canceled at its expiry (lnd's expiry watcher); nothing is pushed for it.
- An HTLC settles an invoice only if it is OPEN, carries the invoice's payment address and at
  least its value; more is accepted (``amt_paid_msat`` > value). Anything else fails the payment
  with INCORRECT_PAYMENT_DETAILS, lnd's answer for unknown, paid, canceled or underpaid invoices.
- Subscribers (``SubscribeInvoices``) get, as lnd sends them: invoices added after their
  ``add_index`` in their current state, then those settled after their ``settle_index`` (0 = no
  replay), then live additions and settlements only; cancellations and ACCEPTED are not pushed.

All of it runs on the node's event loop without awaiting, so each operation is atomic.
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any

from satworks.devnodes.lnd.journal import Journal
from satworks.integrations.lnd.protos import lightning_pb2

State = lightning_pb2.Invoice.InvoiceState
OPEN, SETTLED, CANCELED, ACCEPTED = State.OPEN, State.SETTLED, State.CANCELED, State.ACCEPTED
_BYTES_FIELDS = ("payment_hash", "preimage", "payment_addr")


@dataclass
class Invoice:
    payment_hash: bytes
    preimage: bytes
    payment_addr: bytes
    memo: str
    value_msat: int
    creation_date: int
    expiry_s: int
    cltv_expiry: int
    payment_request: str
    add_index: int = 0
    state: int = OPEN
    settle_index: int = 0
    settle_date: int = 0
    amt_paid_msat: int = 0

    def to_proto(self) -> lightning_pb2.Invoice:
        return lightning_pb2.Invoice(
            memo=self.memo,
            r_preimage=self.preimage,
            r_hash=self.payment_hash,
            value=self.value_msat // 1000,  # lnd truncates its sat fields too
            value_msat=self.value_msat,
            creation_date=self.creation_date,
            settle_date=self.settle_date,
            payment_request=self.payment_request,
            expiry=self.expiry_s,
            cltv_expiry=self.cltv_expiry,
            add_index=self.add_index,
            settle_index=self.settle_index,
            amt_paid_sat=self.amt_paid_msat // 1000,
            amt_paid_msat=self.amt_paid_msat,
            state=State.ValueType(self.state),
            payment_addr=self.payment_addr,
        )

    def record(self) -> dict[str, Any]:
        doc = asdict(self)
        for name in _BYTES_FIELDS:
            doc[name] = doc[name].hex()
        return doc

    @classmethod
    def from_record(cls, doc: dict[str, Any]) -> Invoice:
        fields = {k: v for k, v in doc.items() if k != "kind"}
        for name in _BYTES_FIELDS:
            fields[name] = bytes.fromhex(fields[name])
        return cls(**fields)


class Subscriber:
    """One SubscribeInvoices stream: a queue of snapshots and the indices it has been sent."""

    def __init__(self, add_index: int, settle_index: int) -> None:
        self.queue: asyncio.Queue[lightning_pb2.Invoice] = asyncio.Queue()
        self.add_index = add_index
        self.settle_index = settle_index


class InvoiceRegistry:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._by_hash: dict[bytes, Invoice] = {}
        self._by_add: list[Invoice] = []  # position = add_index - 1
        self._by_settle: list[Invoice] = []  # position = settle_index - 1
        self._expiries: list[tuple[int, int]] = []  # heap of (expires at, add_index) of open invoices
        self._subscribers: set[Subscriber] = set()

    def restore(self, doc: dict[str, Any]) -> None:
        """Replay one journal record (the latest record of an invoice wins)."""
        invoice = Invoice.from_record(doc)
        if invoice.add_index <= len(self._by_add):
            self._by_add[invoice.add_index - 1] = invoice
        else:
            self._by_add.append(invoice)
        self._by_hash[invoice.payment_hash] = invoice
        if invoice.settle_index and invoice.settle_index <= len(self._by_settle):
            self._by_settle[invoice.settle_index - 1] = invoice
        elif invoice.settle_index:
            self._by_settle.append(invoice)
        if invoice.state == OPEN:
            heapq.heappush(self._expiries, (invoice.creation_date + invoice.expiry_s, invoice.add_index))

    @property
    def received_msat(self) -> int:
        return sum(invoice.amt_paid_msat for invoice in self._by_settle)

    def get(self, payment_hash: bytes) -> Invoice | None:
        return self._by_hash.get(payment_hash)

    def add(self, invoice: Invoice) -> Invoice:
        """Store a new invoice (its hash must be new); it gets the next ``add_index``."""
        invoice.add_index = len(self._by_add) + 1
        self._by_add.append(invoice)
        self._by_hash[invoice.payment_hash] = invoice
        heapq.heappush(self._expiries, (invoice.creation_date + invoice.expiry_s, invoice.add_index))
        self._changed(invoice, notify=True)
        return invoice

    def expire_due(self, now: float) -> None:
        """Cancel the open invoices whose expiry has passed."""
        while self._expiries and self._expiries[0][0] <= now:
            _, add_index = heapq.heappop(self._expiries)
            invoice = self._by_add[add_index - 1]
            if invoice.state == OPEN:
                invoice.state = CANCELED
                self._changed(invoice, notify=False)

    def settle_htlc(self, payment_hash: bytes, amt_msat: int, payment_addr: bytes, now: float) -> bytes | None:
        """Settle the invoice with an incoming payment; its preimage, or None if lnd would fail it."""
        self.expire_due(now)
        invoice = self._by_hash.get(payment_hash)
        if invoice is None or invoice.state != OPEN or payment_addr != invoice.payment_addr:
            return None
        if amt_msat <= 0 or amt_msat < invoice.value_msat:
            return None
        invoice.state = SETTLED
        invoice.amt_paid_msat = amt_msat
        invoice.settle_date = int(now)
        invoice.settle_index = len(self._by_settle) + 1
        self._by_settle.append(invoice)
        self._changed(invoice, notify=True)
        return invoice.preimage

    def query(
        self,
        index_offset: int,
        max_invoices: int,
        *,
        pending_only: bool = False,
        reverse: bool = False,
        created_from: int = 0,
        created_to: int = 0,
    ) -> list[Invoice]:
        """lnd's ListInvoices: after ``index_offset`` (before it when ``reverse``), ascending."""

        def wanted(invoice: Invoice) -> bool:
            return (
                (not pending_only or invoice.state in (OPEN, ACCEPTED))
                and (not created_from or invoice.creation_date >= created_from)
                and (not created_to or invoice.creation_date <= created_to)
            )

        if reverse:
            end = len(self._by_add) if index_offset == 0 else max(index_offset - 1, 0)
            found = list(islice(filter(wanted, reversed(self._by_add[:end])), max_invoices))
            found.reverse()
            return found
        return list(islice(filter(wanted, self._by_add[index_offset:]), max_invoices))

    def subscribe(self, add_index: int, settle_index: int) -> Subscriber:
        subscriber = Subscriber(add_index, settle_index)
        if add_index:
            for invoice in self._by_add[add_index:]:
                subscriber.queue.put_nowait(invoice.to_proto())
        if settle_index:
            for invoice in self._by_settle[settle_index:]:
                subscriber.queue.put_nowait(invoice.to_proto())
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def _changed(self, invoice: Invoice, *, notify: bool) -> None:
        self._journal.append("invoice", invoice.record())
        if not notify:
            return
        snapshot = invoice.to_proto()
        for subscriber in self._subscribers:
            if invoice.state == SETTLED:
                if subscriber.settle_index >= invoice.settle_index:
                    continue
                subscriber.settle_index = invoice.settle_index
            else:
                if subscriber.add_index >= invoice.add_index:
                    continue
                subscriber.add_index = invoice.add_index
            subscriber.queue.put_nowait(snapshot)
