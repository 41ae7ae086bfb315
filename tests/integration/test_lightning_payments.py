"""Lightning payment requests end to end: HTTP intake, real worker and listener processes, the lnd
simulator over gRPC (merchant, payer and a second payer on one network)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import bolt11
import pytest

from satworks.broker.build import build_broker
from satworks.broker.client import payment_sender
from satworks.integrations.lnd.errors import LndAlreadyExists, LndError
from satworks.integrations.lnd.records import FailureReason, PaymentStatus
from satworks.jobs.lightning import CHECK, SWEEP
from satworks.scheduler.tasks import TASKS, setting_name
from tests.integration.lightning_stack import FAST_CHECKS, MakeStack, lightning, until
from tests.integration.lnd_fixtures import LndNetwork, lnd_network
from tests.scheduler_support import SchedulerProcess
from tests.support import eventually, message_in_broker, scalar

__all__ = ["lightning", "lnd_network"]


async def test_invoice_is_created_then_settled_through_the_listener(lightning: MakeStack) -> None:
    stack = await lightning()  # scheduled checks are off: only the listener can notice the payment
    created = await stack.create(amount_sat=21_000, memo="raffle ticket 7", expires_in=600)
    assert (created["status"], created["payment_request"], created["method"]) == ("creating", None, "lightning")
    payment = await stack.wait_for(created["id"], "new")
    decoded = bolt11.decode(payment["payment_request"])
    assert payment["payment_request"].startswith("lnbcrt210u1")
    assert (decoded.amount_msat, decoded.description, decoded.payment_hash) == (
        21_000_000,
        "raffle ticket 7",
        payment["payment_hash"],
    )
    assert decoded.date + decoded.expiry <= datetime.fromisoformat(payment["expires_at"]).timestamp()
    assert (payment["received_sat"], payment["received_msat"], payment["address"], payment["txids"]) == (0, 0, None, [])

    paid = await stack.pay(payment["payment_request"])
    assert paid.status == PaymentStatus.SUCCEEDED
    settled = await stack.wait_for(payment["id"], "settled", timeout_s=30)
    assert (settled["received_sat"], settled["received_msat"], settled["exception_status"]) == (
        21_000,
        21_000_000,
        None,
    )
    assert settled["settled_at"] is not None
    assert stack.audit(payment["id"]) == ["new", "settled"]
    assert stack.events(payment["id"]) == ["payment.settled"]
    assert stack.listener is not None
    listener = stack.listener

    def streamed() -> bool:
        samples = listener.metrics()
        handed_on = samples.get("satworks_lnd_stream_updates_total{outcome=enqueued,state=SETTLED}", 0)
        return samples.get("satworks_lnd_stream_up") == 1.0 and handed_on >= 1

    await until(streamed, what="the listener's metrics to show the settlement handed on")


async def test_without_the_listener_the_check_chain_settles_the_payment(lightning: MakeStack) -> None:
    stack = await lightning(listener=False, **FAST_CHECKS)
    payment = await stack.created(amount_sat=5_000)
    await stack.pay(payment["payment_request"])
    settled = await stack.wait_for(payment["id"], "settled", timeout_s=20)
    assert (settled["received_sat"], settled["received_msat"]) == (5_000, 5_000_000)
    assert stack.events(payment["id"]) == ["payment.settled"]
    changed = "satworks_lightning_checks_total{kind=check,outcome=changed}"
    await until(lambda: stack.worker_metrics().get(changed, 0) >= 1, what="the worker to count the check that settled")


async def test_a_restarted_listener_resumes_from_its_stored_indices_and_applies_each_update_once(
    lightning: MakeStack,
) -> None:
    stack = await lightning()
    before = [await stack.created(amount_sat=1_000 + i) for i in range(3)]
    during = [await stack.created(amount_sat=2_000 + i) for i in range(3)]
    await stack.pay(before[0]["payment_request"])
    await stack.wait_for(before[0]["id"], "settled", timeout_s=30)
    assert stack.listener is not None
    stack.listener.kill()  # SIGKILL: no goodbye, whatever it was doing
    for payment in during:  # settled on the node while nobody listens, and no check is scheduled
        await stack.pay(payment["payment_request"])
    await stack.pay(before[1]["payment_request"])
    node = stack.lnd.node("merchant").pubkey.hex()
    cursor = "SELECT settle_index FROM lightning_cursors WHERE node = %s"
    assert scalar(stack.settings, cursor, node) == 1
    stack.start_listener()
    for payment in [before[1], *during]:
        await stack.wait_for(payment["id"], "settled", timeout_s=20)
    assert (await stack.get(before[2]["id"]))["status"] == "new"
    stack.listener.kill()
    stack.start_listener()  # a second restart replays nothing new and changes nothing
    listener = stack.listener
    await until(lambda: listener.metrics().get("satworks_lnd_stream_up") == 1.0, what="the listener to subscribe again")
    for payment in [*before, *during]:
        settled = payment is not before[2]
        assert stack.audit(payment["id"]) == (["new", "settled"] if settled else ["new"])
        assert stack.events(payment["id"]) == (["payment.settled"] if settled else [])
    assert scalar(stack.settings, cursor, node) == 5


async def test_a_listener_killed_while_settlements_stream_in_loses_none_and_applies_none_twice(
    lightning: MakeStack,
) -> None:
    stack = await lightning()  # no scheduled check within the test: only the stream settles
    payments = [await stack.created(amount_sat=3_000 + i) for i in range(8)]
    node = stack.lnd.node("merchant").pubkey.hex()
    cursor = "SELECT coalesce(max(settle_index), 0) FROM lightning_cursors WHERE node = %s"

    async def pay_one_by_one() -> None:
        for payment in payments:
            await stack.pay(payment["payment_request"])

    paying = asyncio.create_task(pay_one_by_one())
    await until(lambda: scalar(stack.settings, cursor, node) >= 3, what="three settlements handed on")
    assert stack.listener is not None
    stack.listener.kill()  # SIGKILL mid-stream: whatever it was handing on
    stack.start_listener()
    await paying
    for payment in payments:
        await stack.wait_for(payment["id"], "settled", timeout_s=30)
    for payment in payments:
        assert stack.audit(payment["id"]) == ["new", "settled"]
        assert stack.events(payment["id"]) == ["payment.settled"]
    await until(lambda: scalar(stack.settings, cursor, node) == 8, what="the stored position to reach the last")


async def test_an_unpaid_invoice_expires_and_cannot_be_paid_after(lightning: MakeStack) -> None:
    stack = await lightning(**FAST_CHECKS)  # lnd pushes no expiry: the checks find it
    created = await stack.create(amount_sat=3_000, expires_in=3)
    expired = await stack.wait_for(created["id"], "expired", timeout_s=30)
    assert (expired["received_sat"], expired["exception_status"]) == (0, None)
    assert expired["status_reason"] == "the invoice expired unpaid"
    assert expired["payment_request"] is not None  # it was an invoice first
    assert stack.audit(created["id"]) == ["new", "expired"]
    assert stack.events(created["id"]) == ["payment.expired"]
    with pytest.raises(LndError, match="invoice expired"):  # lnd refuses it before sending anything
        await stack.pay(expired["payment_request"])
    assert (await stack.get(created["id"]))["status"] == "expired"


async def test_paying_twice_changes_nothing_after_the_first_payment(lightning: MakeStack) -> None:
    stack = await lightning()
    payment = await stack.created(amount_sat=7_000)
    await stack.pay(payment["payment_request"])
    await stack.wait_for(payment["id"], "settled", timeout_s=30)
    with pytest.raises(LndAlreadyExists):  # the same payer: lnd knows it paid
        await stack.pay(payment["payment_request"])
    again = await stack.pay(payment["payment_request"], node="payer2")  # another payer: the payee refuses
    assert (again.status, again.failure_reason) == (PaymentStatus.FAILED, FailureReason.INCORRECT_PAYMENT_DETAILS)
    document = await stack.get(payment["id"])
    assert (document["status"], document["received_msat"]) == ("settled", 7_000_000)
    assert stack.audit(payment["id"]) == ["new", "settled"]
    assert stack.events(payment["id"]) == ["payment.settled"]


async def test_overpayment_settles_as_paid_over_with_the_exact_millisatoshis(lightning: MakeStack) -> None:
    stack = await lightning()
    payment = await stack.created(amount_sat=10_000)
    paid = await stack.pay_amount(payment["payment_request"], 10_000_000 + 2_345)  # 2.345 sat more
    assert paid.status == PaymentStatus.SUCCEEDED
    settled = await stack.wait_for(payment["id"], "settled", timeout_s=30)
    assert (settled["exception_status"], settled["received_sat"], settled["received_msat"]) == (
        "paid_over",
        10_002,  # whole satoshis, never rounded up
        10_002_345,
    )


async def test_a_single_millisatoshi_more_is_visible_and_flagged(lightning: MakeStack) -> None:
    stack = await lightning()
    payment = await stack.created(amount_sat=1)
    await stack.pay_amount(payment["payment_request"], 1_001)
    settled = await stack.wait_for(payment["id"], "settled", timeout_s=30)
    assert (settled["received_sat"], settled["received_msat"], settled["exception_status"]) == (1, 1_001, "paid_over")
    row = scalar(stack.settings, "SELECT amt_paid_msat FROM lightning_invoices WHERE payment_id = %s", payment["id"])
    assert row == 1_001


async def test_a_wrong_macaroon_is_a_clear_permanent_error_and_changes_no_status(lightning: MakeStack) -> None:
    stack = await lightning(worker=False, listener=False, **FAST_CHECKS)
    wrong = str(stack.lnd.node("payer").files.macaroon)  # a real macaroon, of another node
    stack.start_worker(lnd_macaroon_path=wrong)
    never = await stack.create(amount_sat=4_000)
    create_refused = "satworks_lightning_checks_total{kind=create_invoice,outcome=auth_failed}"
    await until(lambda: stack.worker_metrics().get(create_refused, 0) >= 1, what="the invoice job to be refused")
    assert (await stack.get(never["id"]))["status"] == "creating"
    created = "SELECT add_index FROM lightning_invoices WHERE payment_id = %s"
    assert scalar(stack.settings, created, never["id"]) is None

    assert stack.worker is not None
    stack.worker.kill()
    good_worker = stack.start_worker()  # the right macaroon: lnd makes the invoice
    good = await stack.created(amount_sat=4_000, expires_in=10)
    # Killed once the invoice's check chain is queued: a kill between the invoice's commit and that send
    # would leave the chain to the scheduled sweep, which this test does not run.
    await until(lambda: message_in_broker(stack.settings, good["id"]), what="the invoice's first check to be queued")
    good_worker.kill()
    await stack.pay(good["payment_request"])  # paid while nobody watches, well before expiry
    bad_worker = stack.start_worker(lnd_macaroon_path=wrong)  # takes over the check chain
    listener = stack.start_listener(lnd_macaroon_path=wrong)
    # The chain's next check may sit in the killed worker's unacknowledged messages until dead-worker
    # recovery; a check asked for now (as the listener or a node webhook would) does not wait for that.
    broker = build_broker(stack.settings)
    try:
        payment_sender(broker, stack.settings.queue_prefix)(CHECK, (good["id"],), None)
    finally:
        broker.close()

    # The check chain comes back from the killed worker's unacknowledged messages (dead-worker
    # recovery after the heartbeat timeout), hence the longer wait on a loaded machine.
    check_refused = "satworks_lightning_checks_total{kind=check,outcome=auth_failed}"
    await until(lambda: stack.worker_metrics().get(check_refused, 0) >= 1, what="a check to be refused", timeout_s=60)
    stream_refused = "satworks_lnd_stream_reconnects_total{reason=auth_failed}"
    await until(lambda: listener.metrics().get(stream_refused, 0) >= 1, what="the listener to be refused", timeout_s=60)
    await until(lambda: listener.metrics().get("satworks_lnd_stream_up") == 0.0, what="the stream to show down")
    log = (stack.log_dir / "listener.log").read_text()
    assert "lnd_stream_refused" in log and "check the macaroon" in log
    expires_at = datetime.fromisoformat(good["expires_at"]).timestamp()

    async def past_expiry_unchanged() -> bool:
        document = await stack.get(good["id"])
        assert (document["status"], document["received_sat"]) == ("new", 0)
        return time.time() > expires_at + 2

    await eventually(past_expiry_unchanged, what="expiry to pass while lnd refuses us")
    assert stack.audit(good["id"]) == ["new"]

    bad_worker.kill()  # the configuration fixed: the sweep finds what the refused checks could not
    stack.start_worker()
    broker = build_broker(stack.settings)
    try:
        payment_sender(broker, stack.settings.queue_prefix)(SWEEP, (), None)
    finally:
        broker.close()
    # A fresh worker process boots first (imports, connections): seconds on a machine busy with the suite.
    settled = await stack.wait_for(good["id"], "settled", timeout_s=60)
    assert settled["received_msat"] == 4_000_000


async def test_node_down_across_expiry_expires_nothing_and_settles_when_back(
    lightning: MakeStack, lnd_network: LndNetwork
) -> None:
    # Scheduled checks are slow, but the chain's next one still falls due just after expiry.
    stack = await lightning(listener=False)
    # Enough time to pay before expiry even on a loaded machine: paying late would rightly fail.
    payment = await stack.created(amount_sat=8_000, expires_in=20)
    expires_at = datetime.fromisoformat(payment["expires_at"]).timestamp()
    paid = await stack.pay(payment["payment_request"])
    assert paid.status == PaymentStatus.SUCCEEDED
    lnd_network.stop("merchant")  # nobody has read the settlement yet
    assert time.time() < expires_at, "setup too slow: the node went down after expiry"
    listener = stack.start_listener()  # cannot reach the node either

    async def past_expiry_without_expiring() -> bool:
        document = await stack.get(payment["id"])
        assert (document["status"], document["received_sat"]) == ("new", 0)
        return time.time() > expires_at + 3

    await eventually(past_expiry_without_expiring, timeout_s=40, what="expiry to pass while the node is down")
    refused = "satworks_lightning_checks_total{kind=check,outcome=node_unavailable}"
    await until(lambda: stack.worker_metrics().get(refused, 0) >= 1, what="a check to find the node down")
    assert listener.metrics().get("satworks_lnd_stream_reconnects_total{reason=node_unavailable}", 0) >= 1
    assert (await stack.get(payment["id"]))["status"] == "new"

    lnd_network.start("merchant")
    settled = await stack.wait_for(payment["id"], "settled", timeout_s=60)
    assert (settled["received_msat"], settled["exception_status"]) == (8_000_000, None)
    assert stack.audit(payment["id"]) == ["new", "settled"]
    assert stack.events(payment["id"]) == ["payment.settled"]
    await until(lambda: listener.metrics().get("satworks_lnd_stream_up") == 1.0, what="the listener to subscribe again")


async def test_the_scheduled_sweep_settles_a_payment_that_no_check_or_stream_saw(
    lightning: MakeStack, tmp_path: Path
) -> None:
    stack = await lightning(listener=False)  # the request's next scheduled check is minutes away
    payment = await stack.created(amount_sat=6_000)
    await stack.pay(payment["payment_request"])
    # only the sweep: another task's run would be the first one submitted
    schedules = {**{setting_name(task): "off" for task in TASKS}, "schedule_lightning_sweep": "interval:2"}
    scheduler = SchedulerProcess(stack.settings.model_copy(update=schedules), "lightning", tmp_path).start()
    try:
        settled = await stack.wait_for(payment["id"], "settled", timeout_s=40)
    finally:
        scheduler.stop()
    assert (settled["received_msat"], stack.events(payment["id"])) == (6_000_000, ["payment.settled"])
    swept = "satworks_lightning_checks_total{kind=sweep,outcome=changed}"
    await until(lambda: stack.worker_metrics().get(swept, 0) >= 1, what="the sweep to count its change")
    assert [r["task"] for r in scheduler.logs("schedule_submitted")][:1] == ["lightning_sweep"]
