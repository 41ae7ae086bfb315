"""On-chain payment requests end to end: HTTP intake, real workers, the regtest node over JSON-RPC."""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal

import psycopg

from tests.integration.payments_stack import NODE_TOKEN, PaymentStack
from tests.support import db_dsn, eventually, scalar


async def test_exact_payment_is_processing_in_the_mempool_then_settles_when_mined(
    stack: PaymentStack,
) -> None:
    await stack.fund()
    payment = await stack.created(amount_sat=150_000, memo="order 7", metadata={"order": 7})
    assert payment["address"].startswith("bcrt1")
    assert (payment["received_sat"], payment["required_confirmations"]) == (0, 1)
    txid = await stack.pay(payment["address"], 150_000)
    processing = await stack.wait_for(payment["id"], "processing")
    assert (processing["received_sat"], processing["confirmations"], processing["txids"]) == (
        150_000,
        0,
        [txid],
    )
    await stack.mine()
    settled = await stack.wait_for(payment["id"], "settled")
    assert settled["exception_status"] is None
    assert settled["confirmations"] >= 1
    assert datetime.fromisoformat(settled["settled_at"]) <= datetime.fromisoformat(settled["expires_at"])
    assert stack.events(payment["id"]) == ["payment.processing", "payment.settled"]
    trail = scalar(
        stack.settings,
        "SELECT array_agg(to_status ORDER BY id) FROM payment_audit WHERE payment_id = %s",
        payment["id"],
    )
    assert trail == ["new", "processing", "settled"]


async def test_underpaid_request_becomes_partial_then_settles_after_top_up(stack: PaymentStack) -> None:
    await stack.fund()
    payment = await stack.created(amount_sat=100_000)
    await stack.pay(payment["address"], 40_000)
    await stack.mine()
    partial = await stack.wait_for(payment["id"], "new", exception_status="paid_partial")
    assert partial["received_sat"] == 40_000
    await stack.pay(payment["address"], 60_000)
    await stack.mine()
    settled = await stack.wait_for(payment["id"], "settled")
    assert (settled["received_sat"], settled["exception_status"], len(settled["txids"])) == (100_000, None, 2)


async def test_overpayment_settles_and_is_flagged_paid_over(stack: PaymentStack) -> None:
    await stack.fund()
    payment = await stack.created(amount_sat=50_000)
    await stack.pay(payment["address"], 70_000)
    await stack.mine()
    settled = await stack.wait_for(payment["id"], "settled")
    assert (settled["exception_status"], settled["received_sat"]) == ("paid_over", 70_000)


async def test_unpaid_request_expires_and_late_money_stays_visible_as_paid_late(stack: PaymentStack) -> None:
    await stack.fund()
    payment = await stack.created(amount_sat=20_000, expires_in=2)
    expired = await stack.wait_for(payment["id"], "expired")
    assert (expired["exception_status"], expired["received_sat"]) == (None, 0)
    await stack.pay(payment["address"], 20_000)  # the node's walletnotify wakes a check up
    late = await stack.wait_for(payment["id"], "expired", exception_status="paid_late")
    assert late["received_sat"] == 20_000
    assert stack.events(payment["id"]) == ["payment.expired", "payment.paid_late"]


async def test_zero_conf_settles_from_the_mempool_whether_or_not_the_tx_signals_rbf(stack: PaymentStack) -> None:
    await stack.fund()
    final = await stack.created(amount_sat=30_000, confirmations=0)
    replaceable = await stack.created(amount_sat=30_000, confirmations=0)
    await stack.pay(final["address"], 30_000, replaceable=False)
    original = await stack.pay(replaceable["address"], 30_000, replaceable=True)
    assert (await stack.wait_for(final["id"], "settled"))["confirmations"] == 0
    assert (await stack.wait_for(replaceable["id"], "settled"))["confirmations"] == 0
    replacement = await stack.bump(original)  # a fee bump pays the same: the money is still there
    bumped = await stack.wait_for(replaceable["id"], "settled", txids=[replacement])
    assert (bumped["received_sat"], bumped["exception_status"]) == (30_000, None)
    await stack.mine()
    await stack.wait_for(replaceable["id"], "settled", txids=[replacement], confirmations=1)
    assert stack.audit(replaceable["id"]) == ["new", "settled"]


async def test_reorg_that_removes_a_confirmed_payment_makes_it_invalid(stack: PaymentStack) -> None:
    hashes = await stack.mine(101)  # only the first blocks' coinbases are mature: the payment spends one
    payment = await stack.created(amount_sat=25_000)
    txid = await stack.pay(payment["address"], 25_000)
    await stack.mine()
    await stack.wait_for(payment["id"], "settled")
    await stack.rpc("invalidateblock", hashes[0])  # undoes the coinbase the payment spent: it can never confirm
    tx = await stack.rpc("gettransaction", txid)
    assert tx["confirmations"] <= 0
    invalid = await stack.wait_for(payment["id"], "invalid")  # blocknotify → sweep sees it in `removed`
    assert invalid["received_sat"] == 0
    assert "reorganised" in invalid["status_reason"]
    assert stack.events(payment["id"])[-1] == "payment.invalid"


async def test_node_down_across_expiry_expires_nothing_and_settles_when_back(stack: PaymentStack) -> None:
    await stack.fund()
    # Enough time to pay and mine before expiry even on a loaded machine: paying late would rightly expire it.
    payment = await stack.created(amount_sat=10_000, expires_in=15)
    expires_at = datetime.fromisoformat(payment["expires_at"]).timestamp()
    txid = await stack.pay(payment["address"], 10_000)
    await stack.mine()
    paid_at = (await stack.rpc("gettransaction", txid))["timereceived"]
    assert paid_at <= expires_at, "setup too slow: the payment itself came after expiry"
    stack.node_warming_up(expires_at + 3 - time.time())  # every RPC answers -28 until well after expires_at

    async def past_expiry_without_expiring() -> bool:
        assert (await stack.get(payment["id"]))["status"] != "expired"
        return time.time() > expires_at + 2

    await eventually(past_expiry_without_expiring, timeout_s=30, what="time to pass expiry while the node is down")
    settled = await stack.wait_for(payment["id"], "settled", timeout_s=45)
    assert settled["received_sat"] == 10_000


async def test_supplied_address_is_watched_and_unknown_one_is_invalid(stack: PaymentStack) -> None:
    await stack.fund()
    own = await stack.shop_rpc("getnewaddress")
    watched = await stack.create(amount_sat=12_000, address=own)
    assert (watched["status"], watched["address"]) == ("new", own)
    await stack.pay(own, 12_000)
    await stack.mine()
    await stack.wait_for(watched["id"], "settled")
    foreign = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"  # valid regtest address, not in the node's wallet
    unknown = await stack.create(amount_sat=12_000, address=foreign)
    invalid = await stack.wait_for(unknown["id"], "invalid")
    assert invalid["status_reason"] == "address not watched by the node's wallet"


async def test_sweep_after_blocknotify_settles_many_requests(stack: PaymentStack) -> None:
    await stack.fund()
    payments = [await stack.created(amount_sat=5_000 + i) for i in range(5)]
    for i, payment in enumerate(payments):
        await stack.pay(payment["address"], 5_000 + i)
    await stack.mine()
    for payment in payments:
        await stack.wait_for(payment["id"], "settled")


async def test_a_repeated_check_changes_nothing(stack: PaymentStack) -> None:
    await stack.fund()
    payment = await stack.created(amount_sat=9_000)
    await stack.pay(payment["address"], 9_000)
    await stack.mine()
    await stack.wait_for(payment["id"], "settled")
    before = scalar(stack.settings, "SELECT count(*) FROM payment_audit WHERE payment_id = %s", payment["id"])
    for _ in range(3):
        response = await stack.client.post(
            "/v1/webhooks/bitcoind/blocknotify",
            params={"blockhash": "ab" * 32},
            headers={"X-Satworks-Node-Token": NODE_TOKEN},
        )
        assert response.status == 202

    async def swept() -> bool:
        checked = scalar(stack.settings, "SELECT checked_at FROM payment_requests WHERE id = %s", payment["id"])
        return checked is not None and checked.timestamp() > time.time() - 1

    await eventually(swept, what="a sweep after the notifications")
    after = scalar(stack.settings, "SELECT count(*) FROM payment_audit WHERE payment_id = %s", payment["id"])
    assert after == before
    assert stack.events(payment["id"])[-1] == "payment.settled"
    assert stack.events(payment["id"]).count("payment.settled") == 1


async def test_sweep_recovers_when_the_node_does_not_know_its_cursor(stack: PaymentStack) -> None:
    await stack.fund()
    payment = await stack.created(amount_sat=8_000)
    await stack.pay(payment["address"], 8_000)
    await stack.mine()
    await stack.wait_for(payment["id"], "settled")
    with psycopg.connect(db_dsn(stack.settings)) as conn:  # as after the node was replaced by another chain
        conn.execute(
            "INSERT INTO chain_cursors (node, block_hash) VALUES ('bitcoind', %s)"
            " ON CONFLICT (node) DO UPDATE SET block_hash = excluded.block_hash",
            ("00" * 32,),
        )
    await stack.mine()  # blocknotify -> sweep

    async def cursor_moved() -> bool:
        hash_ = scalar(stack.settings, "SELECT block_hash FROM chain_cursors WHERE node = 'bitcoind'")
        return hash_ != "00" * 32

    await eventually(cursor_moved, what="the sweep to read from the start and store a known cursor")
    assert (await stack.get(payment["id"]))["status"] == "settled"


async def test_a_fee_bump_after_a_reorg_keeps_a_settled_payment_settled(stack: PaymentStack) -> None:
    """The replaced tx's notification is handled with nothing of the replacement stored yet."""
    await stack.fund()
    payment = await stack.created(amount_sat=40_000)
    original = await stack.pay(payment["address"], 40_000)
    await stack.wait_for(payment["id"], "processing")
    [block] = await stack.mine()
    await stack.wait_for(payment["id"], "settled", confirmations=1)
    stack.worker.kill()  # notifications queue up, as when the workers lag behind the node
    await stack.rpc("invalidateblock", block)  # the payment is back in the mempool...
    replacement = await stack.bump(original)  # ...and its payer bumps its fee
    stack.restart_worker()
    await stack.wait_for_txs(payment["id"], {original: "removed", replacement: "mempool"})
    settled = await stack.wait_for(payment["id"], "settled", txids=[replacement])
    assert (settled["received_sat"], settled["exception_status"], settled["confirmations"]) == (40_000, None, 0)
    await stack.mine()
    await stack.wait_for(payment["id"], "settled", txids=[replacement], confirmations=1)
    await stack.wait_for_txs(payment["id"], {original: "conflicted", replacement: "confirmed"})
    assert stack.audit(payment["id"]) == ["new", "processing", "settled"]
    assert stack.events(payment["id"]) == ["payment.processing", "payment.settled"]


async def test_a_replacement_mined_while_the_workers_were_down_is_counted_once(stack: PaymentStack) -> None:
    """The original is conflicted then: the node lists no receive for it, yet it must stop counting."""
    await stack.fund()
    payment = await stack.created(amount_sat=40_000)
    original = await stack.pay(payment["address"], 40_000)
    await stack.wait_for(payment["id"], "processing", txids=[original])
    stack.worker.kill()
    replacement = await stack.bump(original)
    await stack.mine()  # the replacement is mined: the original is conflicted
    assert (await stack.shop_rpc("gettransaction", original))["details"] == []
    stack.restart_worker()
    await stack.wait_for_txs(payment["id"], {original: "conflicted", replacement: "confirmed"})
    settled = await stack.wait_for(payment["id"], "settled")
    assert (settled["received_sat"], settled["exception_status"], settled["txids"]) == (40_000, None, [replacement])
    await stack.mine()  # a later sweep changes nothing
    await stack.wait_for(payment["id"], "settled", confirmations=2)
    assert (await stack.get(payment["id"]))["received_sat"] == 40_000
    assert stack.audit(payment["id"]) == ["new", "processing", "settled"]


async def test_a_settled_payment_taken_back_by_a_fee_bump_after_a_reorg_turns_invalid(stack: PaymentStack) -> None:
    """The replacement pays the payer: it is no transaction of the shop's wallet, so only the original's
    state (replaced, then conflicted) tells the money is gone."""
    await stack.fund()
    payment = await stack.created(amount_sat=40_000)
    original = await stack.pay(payment["address"], 40_000)
    [block] = await stack.mine()
    await stack.wait_for(payment["id"], "settled", confirmations=1)
    await stack.rpc("invalidateblock", block)
    refund = {await stack.rpc("getnewaddress"): Decimal("0.0004")}
    await stack.rpc("bumpfee", original, {"outputs": [refund]})
    await stack.mine()
    invalid = await stack.wait_for(payment["id"], "invalid")
    assert (invalid["received_sat"], invalid["txids"]) == (0, [])
    assert "reorganised away or double-spent" in invalid["status_reason"]
    await stack.wait_for_txs(payment["id"], {original: "conflicted"})
    assert stack.events(payment["id"])[-1] == "payment.invalid"
    assert stack.audit(payment["id"])[-2:] == ["settled", "invalid"]
