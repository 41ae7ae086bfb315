"""Replaced and reorganised payments reach one final state, whatever the order satworks hears of them.

The node events of a scenario (a payment, blocks, a reorg, fee bumps) happen on the simulator in
their causal order; each one yields the notifications Bitcoin Core would send (walletnotify per
changed transaction, blocknotify, the request's scheduled check). Hypothesis delivers those to the
payment jobs (run in process, against Postgres) in any order, late, twice, or with the next node
event happening in the middle of a job, between two of its RPC calls. Whatever the order, the
request must end as the node's final state says, and never pass through a wrong terminal state.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from bitcoinrpc.authproxy import AuthServiceProxy
from hypothesis import HealthCheck, Phase, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select

from satworks import clock
from satworks.db import apps
from satworks.db import payments as store
from satworks.db.engine import sync_engine
from satworks.db.schema import app_events, chain_cursors, payment_audit, payment_requests, payment_txs
from satworks.db.schema import apps as apps_table
from satworks.integrations.bitcoin.rpc import BitcoinRpc
from satworks.integrations.bitcoin.transport import JsonRpc
from satworks.jobs import payments as jobs
from satworks.settings import Settings
from tests.integration.bitcoind_fixtures import BitcoindNode, running_bitcoind

AMOUNT_SAT = 40_000
Op = tuple[str, ...]  # ("check",), ("sweep",), ("check_tx", index into World.txids)

# Each scenario: its node events in causal order. Every one ends with the last replacement mined.
# "bump" pays the request the same; "take back" is a fee bump whose outputs pay the payer instead.
SCENARIOS = {
    "reorg, then fee bump, then mined": ["pay", "mine", "reorg", "bump", "mine"],
    "fee bump in the mempool, then mined": ["pay", "bump", "mine"],
    "two fee bumps, then mined": ["pay", "bump", "bump", "mine"],
    "mined, reorg, two fee bumps, then mined": ["pay", "mine", "reorg", "bump", "bump", "mine"],
    "mined, reorg, then taken back and mined": ["pay", "mine", "reorg", "take back", "mine"],
}


class Interrupting(JsonRpc):
    """The jobs' transport: it can run a node event right after the ``after``-th call of a job."""

    def __init__(self, url: str) -> None:
        super().__init__(url, timeout_s=10)
        self.event: Callable[[], None] | None = None
        self.after = 0

    def call(self, method: str, *params: Any, read_only: bool = False) -> Any:
        result = super().call(method, *params, read_only=read_only)
        self.after -= 1
        if self.event is not None and self.after == 0:
            event, self.event = self.event, None
            event()
        return result


@dataclass
class World:
    node: BitcoindNode
    engine: Engine
    settings: Settings
    app_id: uuid.UUID
    transport: Interrupting = field(init=False)
    res: jobs.PaymentResources = field(init=False)
    payer: AuthServiceProxy = field(init=False)
    miner: str = field(init=False)
    address: str = field(init=False)
    pid: uuid.UUID = field(init=False)
    txids: list[str] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        AuthServiceProxy(self.node.url, timeout=10).createwallet("payer")
        self.payer = AuthServiceProxy(f"{self.node.url}/wallet/payer", timeout=10)
        self.miner = self.payer.getnewaddress()
        self.payer.generatetoaddress(101, self.miner)
        self.transport = Interrupting(f"{self.node.url}/wallet/satworks")
        rpc = BitcoinRpc("", timeout_s=10, transport=self.transport)
        self.res = jobs.PaymentResources(self.settings, self.engine, rpc, lambda *_: None)
        self.address = rpc.new_address("property")
        self.pid = uuid.uuid4()
        with self.engine.begin() as conn:  # the sweep's cursor was on the previous example's node
            conn.execute(delete(chain_cursors))

    def open_request(self, confirmations: int) -> None:
        now = clock.utcnow()
        row = {
            "id": self.pid,
            "app_id": self.app_id,
            "method": "onchain",
            "status": "new",
            "amount_sat": AMOUNT_SAT,
            "required_confirmations": confirmations,
            "tolerance_pct": Decimal(0),
            "monitoring_s": 86_400,
            "address": self.address,
            "address_supplied": False,
            "metadata": {},
            "request_hash": "property",
            "created_at": now,
            "expires_at": now + timedelta(hours=1),
        }
        with self.engine.begin() as conn:
            conn.execute(insert(payment_requests).values(row))

    # ---- node events: each returns the notifications Core would send for it

    def event(self, name: str) -> list[Op]:
        every_tx: list[Op] = [("check_tx", str(i)) for i in range(len(self.txids))]
        if name == "pay":
            self.txids.append(self.payer.sendtoaddress(self.address, Decimal(AMOUNT_SAT) / 100_000_000))
            return [("check_tx", "0"), ("check",)]
        if name == "bump":
            self.txids.append(self.payer.bumpfee(self.txids[-1])["txid"])
            return [("check_tx", str(len(self.txids) - 2)), ("check_tx", str(len(self.txids) - 1))]
        if name == "take back":  # the payer's own wallet gets the money: not a tx of the shop's wallet
            refund = {self.payer.getnewaddress(): Decimal(AMOUNT_SAT) / 100_000_000}
            self.payer.bumpfee(self.txids[-1], {"outputs": [refund]})
            return [("check_tx", str(len(self.txids) - 1))]
        if name == "mine":
            self.blocks += self.payer.generatetoaddress(1, self.miner)
            return [*every_tx, ("sweep",), ("check",)]
        if name == "reorg":
            self.payer.invalidateblock(self.blocks.pop())
            return [*every_tx, ("sweep",)]
        raise AssertionError(name)

    # ---- satworks

    def run(self, op: Op) -> None:
        if op[0] == "check":
            jobs.check(self.res, str(self.pid))
        elif op[0] == "sweep":
            jobs.sweep(self.res)
        else:
            jobs.check_tx(self.res, self.txids[int(op[1])])

    def request(self) -> Any:
        with self.engine.connect() as conn:
            return store.load(conn, self.pid)

    def trail(self) -> list[str]:
        with self.engine.connect() as conn:
            query = select(payment_audit.c.to_status).where(payment_audit.c.payment_id == self.pid)
            return [row.to_status for row in conn.execute(query.order_by(payment_audit.c.id))]

    def counted_txids(self) -> list[str]:
        with self.engine.connect() as conn:
            query = (  # the txids a request document lists: its counted receipts, oldest first
                select(payment_txs.c.txid)
                .where(payment_txs.c.payment_id == self.pid, payment_txs.c.state.in_(store.COUNTED))
                .order_by(payment_txs.c.received_at)
            )
            return [row.txid for row in conn.execute(query)]

    def forget(self) -> None:
        with self.engine.begin() as conn:
            for table in (app_events,):
                conn.execute(delete(table).where(table.c.subject_id == self.pid))
            for table in (payment_audit, payment_txs):
                conn.execute(delete(table).where(table.c.payment_id == self.pid))
            conn.execute(delete(payment_requests).where(payment_requests.c.id == self.pid))


@pytest.fixture(scope="module")
def engine(base_settings: Settings) -> Iterator[Engine]:
    engine = sync_engine(base_settings.database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def app_id(engine: Engine) -> uuid.UUID:
    name = f"property-{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        apps.create(conn, name, admin=False, rate_limit_per_minute=None)
        return uuid.UUID(str(conn.execute(select(apps_table.c.id).where(apps_table.c.name == name)).scalar()))


def play(world: World, events: list[str], data: st.DataObject) -> None:
    """Fire ``events`` in order while delivering their notifications in an order Hypothesis picks.

    A delivery may have the next node event, a whole other delivery, or both, happen between two of its
    RPC calls or after its last one: a job reading while the node changes, and two jobs at once where the
    one that read first (before the event) writes last.
    """
    pending: list[tuple[Op, bool]] = [(("check",), False)]  # (operation, already delivered once)
    fired = 0
    while fired < len(events) or pending:
        actions = (["event"] if fired < len(events) else []) + (["deliver"] if pending else [])
        if pending and fired < len(events):
            actions.append("deliver, with the next event inside")
        if len(pending) > 1:
            actions.append("deliver, with another delivery inside")
        if len(pending) > 1 and fired < len(events):
            actions.append("deliver, with the next event and another delivery inside")
        action = data.draw(st.sampled_from(actions))
        if action == "event":
            pending += [(op, False) for op in world.event(events[fired])]
            fired += 1
            continue
        op = _take(pending, data)
        if action == "deliver":
            world.run(op)
            continue
        inside: Callable[[], None]
        if action == "deliver, with the next event inside":
            fired += 1
            inside = _firing(world, events[fired - 1], pending)
        elif action == "deliver, with another delivery inside":
            inside = functools.partial(world.run, _take(pending, data))
        else:  # the outer job's answers are all from before the event, the inner one's from after
            fired += 1
            inside = _then(
                _firing(world, events[fired - 1], pending), functools.partial(world.run, _take(pending, data))
            )
        world.transport.after = data.draw(st.integers(1, 6))
        world.transport.event = inside
        world.run(op)
        if world.transport.event is not None:  # the job made fewer calls: the other thing comes after it
            world.transport.event = None
            inside()


def _take(pending: list[tuple[Op, bool]], data: st.DataObject) -> Op:
    """One pending notification, maybe left pending to come again later (a retry or a duplicate)."""
    op, redelivered = pending.pop(data.draw(st.integers(0, len(pending) - 1)))
    if not redelivered and data.draw(st.booleans()):
        pending.append((op, True))
    return op


def _then(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def both() -> None:
        first()
        second()

    return both


def _firing(world: World, name: str, pending: list[tuple[Op, bool]]) -> Callable[[], None]:
    def fire() -> None:
        pending.extend((op, False) for op in world.event(name))

    return fire


PROPERTY = hypothesis_settings(
    max_examples=100,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no "explain": its tracer upsets psycopg's pipeline
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_final_state(world: World, scenario: str) -> None:
    if "take back" in SCENARIOS[scenario]:
        assert_taken_back(world)
    else:
        assert_settled_once_on_the_last_replacement(world)


def assert_taken_back(world: World) -> None:
    """The money is gone: ``invalid`` if the request had settled (settled is final while its money
    exists, so whether it did depends on when it was looked at), else ``new``; nothing counts."""
    request, trail = world.request(), world.trail()
    settled = "settled" in trail
    assert (request.status, request.received_sat) == ("invalid" if settled else "new", 0), trail
    assert request.exception_status is None
    assert world.counted_txids() == []
    assert trail.count("settled") <= 1 and trail.count("invalid") == int(settled), trail
    assert "expired" not in trail, trail


def assert_settled_once_on_the_last_replacement(world: World) -> None:
    """The node's final word: the last replacement is mined and pays the amount exactly, once."""
    request = world.request()
    assert (request.status, request.exception_status, request.received_sat) == ("settled", None, AMOUNT_SAT)
    assert request.confirmations >= 1
    assert world.counted_txids() == [world.txids[-1]]
    trail = world.trail()
    assert "invalid" not in trail and "expired" not in trail, trail
    assert trail.count("settled") == 1, trail  # no wrong amount or exception on the way


@pytest.mark.timeout(900)
@PROPERTY
@given(scenario=st.sampled_from(sorted(SCENARIOS)), confirmations=st.sampled_from([0, 1]), data=st.data())
def test_replaced_payments_end_settled_once_whatever_the_order_of_notifications(
    base_settings: Settings, engine: Engine, app_id: uuid.UUID, scenario: str, confirmations: int, data: st.DataObject
) -> None:
    with running_bitcoind() as node:
        world = World(node, engine, base_settings, app_id)
        world.open_request(confirmations)
        try:
            play(world, SCENARIOS[scenario], data)
            assert_final_state(world, scenario)
        finally:
            world.forget()


@pytest.mark.timeout(900)
@PROPERTY
@given(
    scenario=st.sampled_from(sorted(SCENARIOS)),
    confirmations=st.sampled_from([0, 1]),
    after_each_event=st.lists(st.lists(st.sampled_from(["check", "sweep"]), max_size=2), min_size=6, max_size=6),
)
@example(  # the cursor stays below the reorganised block: listsinceblock's ``removed`` is empty
    scenario="reorg, then fee bump, then mined", confirmations=1, after_each_event=[["sweep"], ["check"], *[[]] * 4]
)
@example(  # the same, and no replacement pays the address: only getchaintips shows the block is gone
    scenario="mined, reorg, then taken back and mined",
    confirmations=1,
    after_each_event=[["sweep"], ["check"], *[[]] * 4],
)
def test_a_sweep_alone_agrees_with_the_checks_whatever_ran_before(
    base_settings: Settings,
    engine: Engine,
    app_id: uuid.UUID,
    scenario: str,
    confirmations: int,
    after_each_event: list[list[str]],
) -> None:
    """Notifications lost, only some checks and sweeps ran between the node events, and the last word
    is a sweep's. E.g. a sweep stored its cursor, a check stored the payment confirmed, then the block was
    reorganised away and the replacement mined: ``listsinceblock`` from that cursor lists no ``removed``."""
    with running_bitcoind() as node:
        world = World(node, engine, base_settings, app_id)
        world.open_request(confirmations)
        try:
            for name, ops in zip(SCENARIOS[scenario], after_each_event, strict=False):
                world.event(name)  # its notifications are lost
                for op in ops:
                    world.run((op,))
            world.run(("sweep",))
            assert_final_state(world, scenario)
        finally:
            world.forget()
